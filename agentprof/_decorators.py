"""``@task`` and ``@step``: the units whose cost agentprof reports.

Each works as a bare decorator, a decorator with arguments, and a (sync or async) context
manager, on plain functions, coroutines, generators and async generators. A task or step is
one span, emitted when it ends. Generators keep their frame current only while their own body
runs, never while the consumer runs between two ``yield``s, so model calls made by the
consumer are not attributed to the generator's step.

Everything agentprof does here is guarded: a failure inside agentprof is counted and the
user's function runs exactly as it would without it; the user's exceptions pass through
unchanged.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from agentprof import _runtime, _safety
from agentprof import _semconv as sc
from agentprof._context import (
    Frame,
    TaskState,
    current_frame,
    enter_frame,
    exit_frame,
    new_span_id,
    parent_of_new_span,
    process_frame,
    step_frame,
)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(slots=True)
class _Active:
    frame: Frame
    parent_span_id: int | None
    start_ns: int
    tokens: tuple[object, object] | None = None
    args_hash: str | None = None
    result_hash: str | None = None


def _repr_hash(value: Any) -> str | None:
    """Hash of ``repr(value)``: enough to tell identical tool calls apart without storing them."""
    try:
        import xxhash

        return xxhash.xxh3_64_hexdigest(repr(value).encode("utf-8", "replace"))
    except Exception:
        return None


class _Scope:
    """Shared machinery of :class:`task` and :class:`step` (decorator and context manager)."""

    kind: str = sc.KIND_STEP

    def __init__(self, name: str | None, attributes: Mapping[str, Any] | None, step_kind: str) -> None:
        self.name = name
        self.attributes = dict(attributes) if attributes else {}
        self.step_kind = step_kind
        self._stack: list[_Active | None] = []

    # --- lifecycle -------------------------------------------------------------------------
    def _make_frame(self, name: str) -> _Active | None:
        try:
            _runtime.ensure_configured()
            trace_id, parent_span_id, parent = parent_of_new_span()
            if self.kind == sc.KIND_TASK:
                span_id = new_span_id()
                frame = Frame(trace_id, span_id, span_id, name, sc.TASK_LEVEL_STEP, None, None, TaskState())
            else:
                frame = step_frame(name, self.step_kind, trace_id, parent)
            return _Active(frame, parent_span_id, time.time_ns())
        except Exception as exc:
            _safety.internal_error(f"{self.kind}.start", exc)
            return None

    def _finish(self, active: _Active | None, error: BaseException | None) -> None:
        if active is None:
            return
        try:
            end_ns = time.time_ns()
            frame = active.frame
            failed = error is not None and not isinstance(error, GeneratorExit | StopIteration | StopAsyncIteration)
            attributes: dict[str, Any] = {sc.AGENTPROF_KIND: self.kind, sc.AGENTPROF_TASK_NAME: frame.task_name}
            if frame.task_id is not None:
                attributes[sc.AGENTPROF_TASK_ID] = format(frame.task_id, "016x")
            if self.kind == sc.KIND_TASK:
                state = frame.task_state or TaskState()
                attributes[sc.GEN_AI_OPERATION_NAME] = sc.OPERATION_INVOKE_AGENT
                attributes[sc.GEN_AI_AGENT_NAME] = frame.task_name
                attributes[sc.AGENTPROF_TASK_SUCCESS] = state.success if state.success is not None else not failed
                attributes[sc.AGENTPROF_TASK_OUTCOME_EXPLICIT] = state.success is not None
                if state.score is not None:
                    attributes[sc.AGENTPROF_TASK_SCORE] = state.score
                for key, value in self.attributes.items():
                    attributes[sc.AGENTPROF_ATTRIBUTE_PREFIX + str(key)] = (
                        value if isinstance(value, str | bool | int | float) else str(value)
                    )
                span_name = f"{sc.OPERATION_INVOKE_AGENT} {frame.task_name}"
            else:
                attributes[sc.AGENTPROF_STEP_NAME] = frame.step_name
                attributes[sc.AGENTPROF_STEP_KIND] = self.step_kind
                if frame.step_path:
                    attributes[sc.AGENTPROF_STEP_PATH] = frame.step_path
                if active.args_hash is not None:
                    attributes[sc.AGENTPROF_TOOL_ARGS_HASH] = active.args_hash
                if active.result_hash is not None:
                    attributes[sc.AGENTPROF_TOOL_RESULT_HASH] = active.result_hash
                if self.step_kind == "tool":
                    attributes[sc.GEN_AI_OPERATION_NAME] = sc.OPERATION_EXECUTE_TOOL
                    attributes[sc.GEN_AI_TOOL_NAME] = frame.step_name
                    span_name = f"{sc.OPERATION_EXECUTE_TOOL} {frame.step_name}"
                else:
                    span_name = frame.step_name
            if failed:
                attributes[sc.ERROR_TYPE] = type(error).__name__
            _runtime.emit_span(
                span_name,
                trace_id=frame.trace_id,
                span_id=frame.span_id,
                parent_span_id=active.parent_span_id,
                start_ns=active.start_ns,
                end_ns=end_ns,
                attributes=attributes,
                error=failed,
                error_message=type(error).__name__ if failed else None,
            )
        except Exception as exc:
            _safety.internal_error(f"{self.kind}.finish", exc)

    def _enter(self, active: _Active | None) -> None:
        if active is not None:
            try:
                active.tokens = enter_frame(active.frame)
            except Exception as exc:
                _safety.internal_error(f"{self.kind}.enter", exc)

    def _exit(self, active: _Active | None) -> None:
        if active is not None and active.tokens is not None:
            tokens, active.tokens = active.tokens, None
            try:
                exit_frame(tokens)
            except Exception as exc:
                _safety.internal_error(f"{self.kind}.exit", exc)

    # --- context manager -------------------------------------------------------------------
    def __enter__(self) -> _Scope:
        active = self._make_frame(self.name or self.kind)
        self._enter(active)
        self._stack.append(active)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        active = self._stack.pop() if self._stack else None
        self._exit(active)
        self._finish(active, exc)

    async def __aenter__(self) -> _Scope:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    # --- decorator -------------------------------------------------------------------------
    def __call__(self, func: F) -> F:
        name: str = self.name or str(getattr(func, "__qualname__", None) or getattr(func, "__name__", self.kind))
        tool = self.kind == sc.KIND_STEP and self.step_kind == "tool"
        if inspect.isasyncgenfunction(func):
            return cast(F, self._wrap_async_generator(func, name))
        if inspect.isgeneratorfunction(func):
            return cast(F, self._wrap_generator(func, name))
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                active = self._make_frame(name)
                if tool and active is not None:
                    active.args_hash = _repr_hash((args, kwargs))
                self._enter(active)
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    self._exit(active)
                    self._finish(active, exc)
                    raise
                self._exit(active)
                if tool and active is not None:
                    active.result_hash = _repr_hash(result)
                self._finish(active, None)
                return result

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            active = self._make_frame(name)
            if tool and active is not None:
                active.args_hash = _repr_hash((args, kwargs))
            self._enter(active)
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                self._exit(active)
                self._finish(active, exc)
                raise
            self._exit(active)
            if tool and active is not None:
                active.result_hash = _repr_hash(result)
            self._finish(active, None)
            return result

        return cast(F, wrapper)

    def _wrap_generator(self, func: Callable[..., Generator[Any, Any, Any]], name: str) -> Callable[..., Any]:
        scope = self

        @functools.wraps(func)
        def generator_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            active = scope._make_frame(name)
            scope._enter(active)
            try:
                generator = func(*args, **kwargs)
            finally:
                scope._exit(active)
            error: BaseException | None = None
            try:
                to_send: Any = None
                throw: BaseException | None = None
                while True:
                    scope._enter(active)
                    try:
                        value = generator.throw(throw) if throw is not None else generator.send(to_send)
                    finally:
                        scope._exit(active)
                    throw = None
                    try:
                        to_send = yield value
                    except GeneratorExit:
                        scope._enter(active)
                        try:
                            generator.close()
                        finally:
                            scope._exit(active)
                        raise
                    except BaseException as exc:
                        throw = exc
            except StopIteration as stop:
                return stop.value
            except BaseException as exc:
                error = exc
                raise
            finally:
                scope._finish(active, error)

        return generator_wrapper

    def _wrap_async_generator(self, func: Callable[..., AsyncGenerator[Any, Any]], name: str) -> Callable[..., Any]:
        scope = self

        @functools.wraps(func)
        async def async_generator_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
            active = scope._make_frame(name)
            scope._enter(active)
            try:
                generator = func(*args, **kwargs)
            finally:
                scope._exit(active)
            error: BaseException | None = None
            try:
                to_send: Any = None
                throw: BaseException | None = None
                while True:
                    scope._enter(active)
                    try:
                        if throw is not None:
                            value = await generator.athrow(throw)
                        else:
                            value = await generator.asend(to_send)
                    finally:
                        scope._exit(active)
                    throw = None
                    try:
                        to_send = yield value
                    except GeneratorExit:
                        scope._enter(active)
                        try:
                            await generator.aclose()
                        finally:
                            scope._exit(active)
                        raise
                    except BaseException as exc:
                        throw = exc
            except StopAsyncIteration:
                return
            except BaseException as exc:
                error = exc
                raise
            finally:
                scope._finish(active, error)

        return async_generator_wrapper


class task(_Scope):  # noqa: N801 - used as a decorator, named like one
    """Mark one agent task: the unit whose cost, outcome and latency are reported.

    Use as ``@agentprof.task``, ``@agentprof.task(name="triage", attributes={...})`` or
    ``with agentprof.task("triage"):``. An exception marks the task failed and propagates
    unchanged; :func:`set_outcome` records an explicit outcome.
    """

    kind = sc.KIND_TASK

    def __new__(cls, name: Any = None, **options: Any) -> Any:
        """Support the bare form ``@agentprof.task`` by decorating right away."""
        if callable(name) and not isinstance(name, str):
            instance = super().__new__(cls)
            cls.__init__(instance, **options)
            return instance(name)
        return super().__new__(cls)

    def __init__(self, name: str | None = None, *, attributes: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, attributes, "step")


class step(_Scope):  # noqa: N801 - used as a decorator, named like one
    """Mark a named step (``kind="step"``) or tool call (``kind="tool"``) inside a task.

    Model calls belong to the innermost enclosing step; steps nest.
    """

    kind = sc.KIND_STEP

    def __new__(cls, name: Any = None, **options: Any) -> Any:
        """Support the bare form ``@agentprof.step`` by decorating right away."""
        if callable(name) and not isinstance(name, str):
            instance = super().__new__(cls)
            cls.__init__(instance, **options)
            return instance(name)
        return super().__new__(cls)

    def __init__(self, name: str | None = None, *, kind: str = "step") -> None:
        if kind not in ("step", "tool"):
            from agentprof.exceptions import ConfigError

            raise ConfigError(f"step kind must be 'step' or 'tool', not {kind!r}")
        super().__init__(name, None, kind)


def set_outcome(success: bool, score: float | None = None) -> None:
    """Record the outcome of the innermost running task (an agent can return and still fail)."""
    try:
        frame = current_frame.get() or process_frame()
        if frame is None or frame.task_state is None:
            _safety.count("set_outcome_outside_task")
            return
        frame.task_state.success = bool(success)
        frame.task_state.score = float(score) if score is not None else None
    except Exception as exc:
        _safety.internal_error("set_outcome", exc)
