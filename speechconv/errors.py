"""Typed errors. The CLI prints them as one line: ``speechconv: <message>``."""


class SpeechconvError(Exception):
    """Base class for errors the CLI reports without a traceback."""


class ConfigError(SpeechconvError):
    """A model name, config file or option is wrong."""
