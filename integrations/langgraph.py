"""LangGraph / LangChain instrumentation: a graph run is a task, each node run a step, each tool a tool step.

Model calls are still recorded by the provider integrations (``ChatOpenAI`` drives the real
``openai`` SDK); this module only opens the agentprof task and steps they are attributed to,
so it must make those frames current *where the node code runs*. Patch points, all undone by
:func:`uninstrument`:

* ``Pregel.stream`` / ``Pregel.astream``: every way to run a compiled graph goes through them
  (``invoke``, ``ainvoke``, ``batch``, ``stream_events`` and LangChain's ``Runnable`` helpers
  included), so patching the two generators gives exactly one scope per run. The scope is
  live while the graph's own generator body runs, not while the consumer handles a chunk, and
  it ends when the iteration ends, is closed early (ok) or raises (failed, error propagated
  unchanged).
* ``langgraph.pregel._runner.run_with_retry`` / ``arun_with_retry``: the one place that runs a
  node (a ``StateGraph`` node, a ``Send`` target, a functional-API ``@task``), retries included.
  LangGraph runs it on the caller's thread, in its ``BackgroundExecutor`` (which submits with
  ``copy_context()``) or as an asyncio task (which copies the context too), so the graph's
  frame is always inherited and the node's step wraps the node body wherever it executes.
* ``langchain_core.tools.BaseTool.run`` / ``arun``: every tool execution (``ToolNode``,
  ``tool.invoke``/``ainvoke``, LangChain agents) lands in one of them.

Decisions where the issue was silent:

* Task name: ``config["metadata"]["agentprof_task"]`` of the call (or of ``graph.with_config``),
  else ``graph.name`` (LangGraph's default is ``"LangGraph"``; ``compile(name=...)`` sets it).
* Inside a task the user opened (``agentprof.task`` or an outer graph run), a graph does not
  open a second task: its run is a step named like the task would have been, its nodes nest
  under it. Under ``agentprof run`` (the whole program as one task) a graph still opens its
  own task, as ``@agentprof.task`` does there.
* Subgraphs (a compiled graph run from inside a node, as the node itself or called by it) get
  no scope of their own: their nodes are steps nested under the parent node's step
  (``parent_node/child_node``), the parent node already standing for the subgraph.
* Tools are recorded inside any task (LangGraph or not), never outside one: an ``(untracked)``
  step per stray tool call would only be noise. Their arguments and output text are hashed
  (not stored) for the redundant-tool rule; the tool-call id is left out, so identical calls
  hash alike.
* LangGraph's reserved nodes (``__start__``, which only writes the input to the state) are no
  steps: they run no user code and would only clutter every report.
* ``GraphInterrupt`` and ``ParentCommand`` (LangGraph's ``GraphBubbleUp``) leaving a node are
  control flow, not failures: the node's step ends ok.

Never breaks the framework: each hook runs under :mod:`agentprof._safety`, and a failure of
ours falls back to running LangGraph's original code untouched.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar, Token
from typing import Any, cast

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langgraph.errors import GraphBubbleUp
from langgraph.pregel import Pregel
from langgraph.pregel import _runner as pregel_runner

from agentprof import _runtime, _safety
from agentprof._context import Frame, current_frame, process_frame
from agentprof._decorators import _Active, _repr_hash, _Scope, step, task

from ._patching import Patcher

TASK_NAME_METADATA_KEY = "agentprof_task"
"""``config["metadata"]`` key that names the task (or step) of a graph run instead of ``graph.name``."""

DEFAULT_GRAPH_NAME = "LangGraph"

_patcher = Patcher()

#: The frame of the node step running here, so a graph started inside it knows it is a subgraph.
_node_frame: ContextVar[Frame | None] = ContextVar("agentprof_langgraph_node", default=None)


# --- graph runs ----------------------------------------------------------------------------


def _config_argument(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The ``config`` argument of ``stream(input, config=None, ...)``."""
    return kwargs["config"] if "config" in kwargs else (args[1] if len(args) > 1 else None)


def _metadata_name(config: Any) -> str | None:
    metadata = config.get("metadata") if isinstance(config, Mapping) else None
    name = metadata.get(TASK_NAME_METADATA_KEY) if isinstance(metadata, Mapping) else None
    return name if isinstance(name, str) and name else None


def graph_run_name(graph: Any, config: Any) -> str:
    """Name of a run of ``graph``: the metadata override of the call or the graph, else ``graph.name``.

    Only the ``config`` passed to this call and the graph's own (``with_config``) are read, never
    the config LangGraph inherits from an enclosing run, so an outer graph's name never leaks
    into a nested one.
    """
    name = _metadata_name(config) or _metadata_name(getattr(graph, "config", None))
    if name is not None:
        return name
    own = getattr(graph, "name", None)
    return own if isinstance(own, str) and own else DEFAULT_GRAPH_NAME


def _graph_scope(graph: Any, config: Any) -> _Scope | None:
    """The scope of one graph run: a task, a step inside a user's task, or ``None`` (not recorded).

    ``None`` for a subgraph, and when agentprof is not configured (never configured, or shut
    down): like the provider integrations, a graph run must not configure a store by itself.
    """
    if _runtime.get_runtime() is None:
        return None
    frame = current_frame.get() or process_frame()
    if frame is not None and frame is _node_frame.get():
        return None
    name = graph_run_name(graph, config)
    if frame is not None and frame.task_id is not None and frame is not process_frame():
        return cast(_Scope, step(name))
    return cast(_Scope, task(name))


def _scoped_run(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], where: str
) -> Any:
    try:
        scope = _graph_scope(instance, _config_argument(args, kwargs))
        run = scope(wrapped) if scope is not None else wrapped
    except Exception as exc:
        _safety.internal_error(where, exc)
        run = wrapped
    return run(*args, **kwargs)


def _stream(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Wrapper of ``Pregel.stream``: the returned generator runs inside the graph's task or step."""
    if not inspect.isgeneratorfunction(wrapped):  # a LangGraph whose stream is no generator: unknown shape
        _safety.count("langgraph.unsupported_stream")
        return wrapped(*args, **kwargs)
    return _scoped_run(wrapped, instance, args, kwargs, "langgraph.stream")


def _astream(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Wrapper of ``Pregel.astream``, the async twin of :func:`_stream`."""
    if not inspect.isasyncgenfunction(wrapped):
        _safety.count("langgraph.unsupported_stream")
        return wrapped(*args, **kwargs)
    return _scoped_run(wrapped, instance, args, kwargs, "langgraph.astream")


# --- nodes ---------------------------------------------------------------------------------


_NodeScope = tuple[_Scope, "Token[Frame | None]"]


def _enter_node(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _NodeScope | None:
    """Open the step of the node ``run_with_retry(task, ...)`` is about to run (``None``: outside a task)."""
    try:
        if (current_frame.get() or process_frame()) is None:
            return None
        name = str((args[0] if args else kwargs["task"]).name)
        if name.startswith("__") and name.endswith("__"):  # LangGraph's own nodes (``__start__``): no user code
            return None
        scope = cast(_Scope, step(name))
        scope.__enter__()
        return scope, _node_frame.set(current_frame.get())
    except Exception as exc:
        _safety.internal_error("langgraph.node.start", exc)
        return None


def _exit_node(entered: _NodeScope, error: BaseException | None) -> None:
    scope, token = entered
    try:
        _node_frame.reset(token)
    except Exception as exc:  # a different context (never expected): the scope must still end
        _safety.internal_error("langgraph.node.exit", exc)
    failed = error if error is not None and not isinstance(error, GraphBubbleUp) else None
    scope.__exit__(type(failed) if failed is not None else None, failed, None)


def _run_node(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Wrapper of ``run_with_retry``: one step per node execution, retries included."""
    entered = _enter_node(args, kwargs)
    if entered is None:
        return wrapped(*args, **kwargs)
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        _exit_node(entered, exc)
        raise
    _exit_node(entered, None)
    return result


async def _arun_node_body(wrapped: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # Entered here, in the coroutine, not when LangGraph creates it: the asyncio task that runs
    # it owns the context the step must be current in.
    entered = _enter_node(args, kwargs)
    if entered is None:
        return await wrapped(*args, **kwargs)
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        _exit_node(entered, exc)
        raise
    _exit_node(entered, None)
    return result


def _arun_node(
    wrapped: Callable[..., Awaitable[Any]], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Awaitable[Any]:
    """Wrapper of ``arun_with_retry``, the async twin of :func:`_run_node`."""
    return _arun_node_body(wrapped, args, kwargs)


# --- tools ---------------------------------------------------------------------------------


_ToolScope = tuple[_Scope, _Active]


def _tool_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The tool's arguments (``run(tool_input, ...)``), without the per-call id."""
    return args[0] if args else kwargs.get("tool_input")


def tool_output(result: Any) -> Any:
    """What a tool returned, without the per-call id a ``ToolMessage`` carries."""
    if isinstance(result, ToolMessage):
        return (result.content, result.artifact, result.status)
    return result


def _enter_tool(tool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _ToolScope | None:
    try:
        if (current_frame.get() or process_frame()) is None:
            return None
        name = str(getattr(tool, "name", None) or type(tool).__name__)
        scope = cast(_Scope, step(name, kind="tool"))
        active = scope._make_frame(name)
        if active is None:
            return None
        active.args_hash = _repr_hash(_tool_input(args, kwargs))
        scope._enter(active)
        return scope, active
    except Exception as exc:
        _safety.internal_error("langgraph.tool.start", exc)
        return None


def _exit_tool(entered: _ToolScope, result: Any, error: BaseException | None) -> None:
    scope, active = entered
    scope._exit(active)
    if error is None:
        try:
            active.result_hash = _repr_hash(tool_output(result))
        except Exception as exc:
            _safety.internal_error("langgraph.tool.result", exc)
    scope._finish(active, error)


def _run_tool(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Wrapper of ``BaseTool.run``: a ``kind="tool"`` step named after the tool."""
    entered = _enter_tool(instance, args, kwargs)
    if entered is None:
        return wrapped(*args, **kwargs)
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        _exit_tool(entered, None, exc)
        raise
    _exit_tool(entered, result, None)
    return result


async def _arun_tool_body(
    wrapped: Callable[..., Awaitable[Any]], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    entered = _enter_tool(instance, args, kwargs)
    if entered is None:
        return await wrapped(*args, **kwargs)
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        _exit_tool(entered, None, exc)
        raise
    _exit_tool(entered, result, None)
    return result


def _arun_tool(
    wrapped: Callable[..., Awaitable[Any]], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Awaitable[Any]:
    """Wrapper of ``BaseTool.arun``, the async twin of :func:`_run_tool`."""
    return _arun_tool_body(wrapped, instance, args, kwargs)


# --- lifecycle -----------------------------------------------------------------------------


def instrument() -> None:
    """Patch LangGraph and LangChain tools (idempotent)."""
    _patcher.patch(Pregel, "stream", _stream)
    _patcher.patch(Pregel, "astream", _astream)
    # Module functions, not methods: Patcher only needs __dict__, getattr and setattr, which a module has.
    runner = cast(type, pregel_runner)
    _patcher.patch(runner, "run_with_retry", _run_node)
    _patcher.patch(runner, "arun_with_retry", _arun_node)
    _patcher.patch(BaseTool, "run", _run_tool)
    _patcher.patch(BaseTool, "arun", _arun_tool)


def uninstrument() -> None:
    """Restore LangGraph's and LangChain's original functions."""
    _patcher.unpatch_all()


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _patcher.is_patched()
