"""Failures the user can act on. Each carries a one-line message; the CLI prints it and exits."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """A foreign exception's message cut to one line, for the one-line errors below; its type if empty."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


class LstmvisionError(RuntimeError):
    """Base of the errors below: exit code 1 unless the class says otherwise."""

    exit_code = 1


class ParamsError(LstmvisionError, ValueError):
    """params.yaml (or a command-line argument) is unusable."""

    exit_code = 2


class SourceError(LstmvisionError):
    """A dataset could not be made available."""


class FetchError(LstmvisionError):
    """A download or extraction was refused."""


class ImageError(LstmvisionError, ValueError):
    """An image file that cannot be used; the message names the file."""


class TrackingError(LstmvisionError):
    """The MLflow tracking store cannot be used."""


class DivergenceError(LstmvisionError):
    """The training loss became NaN or infinite."""


class InputError(LstmvisionError):
    """An input file (a baseline, a metrics file) is malformed; the message names it."""

    exit_code = 2


class BusyError(LstmvisionError):
    """The same job is already running in another process."""


class Interrupted(LstmvisionError):
    """A signal stopped the work; the exit code follows the shell's 128 + signal number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum

    def __reduce__(self):  # rebuilt from both arguments when a worker process sends it back
        return Interrupted, (str(self), self.exit_code - 128)


class ModelError(LstmvisionError):
    """An exported model folder that cannot be loaded; the message names it."""
