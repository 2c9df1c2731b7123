"""Run by ``test_disconnects.py`` in a process of its own: ``serve()`` in the main thread, as
``critics serve`` runs it (uvicorn's own SIGTERM handling), for a critic on the scripted backend
whose every batch takes ``delay`` seconds.

    python -m tests.critics.serving.scripted_server PORT GRACEFUL_TIMEOUT_S DELAY_S
"""

from __future__ import annotations

import sys

from critics.serving.critic import Critic
from critics.serving.server import ServerSettings, serve
from tests.critics.serving.helpers import ScriptedBackend


def main(port: int, graceful_timeout_s: float, delay_s: float) -> None:
    critic = Critic(ScriptedBackend(delay_s), style="compact", max_batch_size=1, max_wait_ms=0)
    serve(critic, ServerSettings(port=port, graceful_timeout_s=graceful_timeout_s, log_level="warning"))


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]))
