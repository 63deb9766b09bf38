"""hvjob: control Hyper-V cluster jobs over WS-Management from Linux."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hvjob")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = ["__version__"]
