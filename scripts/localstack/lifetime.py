"""Helper processes of the local stack end with the process that started them.

The stack stops its worker processes itself when it stops. When it cannot (killed with
SIGKILL, or crashed), each helper notices that its parent is gone and exits, so a
restart on the same data folder starts from nothing left over.
"""

from __future__ import annotations

import os
import signal
import threading
import time


def exit_with_parent(interval_s: float = 1.0) -> None:
    """In a helper process: exit as soon as the process that started it is gone.

    Also ignores SIGINT: Ctrl-C reaches the whole process group, and the stack stops
    its helpers itself.

    Args:
        interval_s: How often to look at the parent.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def watch() -> None:
        # An orphan is adopted by another process (init or a subreaper): its parent
        # id changes.
        while os.getppid() == parent:
            time.sleep(interval_s)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
