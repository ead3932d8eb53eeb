"""cancel-watchdog: monitoring and alerting for cancelled orders (已撤单)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cancel-watchdog")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+source"
