"""Worker for the multi-process test: runs N tasks, each making one real openai call.

Run as ``python tests/multiprocess_worker.py BASE_URL STORE N WORKER_ID``.
"""

from __future__ import annotations

import sys

import openai

import agentprof


def main() -> None:
    base_url, store, count, worker = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    agentprof.configure(db=store, service_name=f"worker-{worker}")
    agentprof.instrument()
    client = openai.OpenAI(base_url=base_url, api_key="test", max_retries=0)

    @agentprof.task(name="job")
    def job(i: int) -> None:
        with agentprof.step("answer"):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"worker {worker} job {i}"}]
            )

    for i in range(count):
        job(i)
    client.close()
    agentprof.shutdown()


if __name__ == "__main__":
    main()
