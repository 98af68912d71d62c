"""Errors of the backend layer. Each says what is wrong in words a user can act on."""


class BackendError(Exception):
    """Base class of every error the backend layer raises."""


class InvalidRequestError(BackendError, ValueError):
    """The request itself is malformed (empty prompt, max_tokens <= 0, ...)."""


class BackendConfigError(BackendError, ValueError):
    """A backend spec or its options are wrong: unknown scheme, missing model file, bad option."""


class CapabilityError(BackendError):
    """The request needs something this backend cannot do (logprobs, a constraint kind, raw prompts)."""


class TransientBackendError(BackendError):
    """A failure worth retrying: a dropped connection, a timeout, a server that is restarting."""


class BackendUnavailableError(BackendError):
    """The backend kept failing after every retry; the message names the backend and the last cause."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts
