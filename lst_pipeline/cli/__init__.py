"""The ``lst-pipeline`` command line.

Commands
--------
``simulate CONFIG``   write a synthetic region's input stack and truth cube
``ingest CONFIG``     read real Landsat/MODIS files or STAC items into the input stack
``inspect STORE``     print what an input stack or output cube holds
``run CONFIG``        fuse the input stack into the daily output cube on a Dask cluster
``demo``              simulate + run + score the bundled demo region, with a quicklook PNG
``train CONFIG``      train DLSTFM on input stacks (simulated regions or real stacks)
``adapt CONFIG``      fine-tune DLSTFM on the region's own stack, scored on held-out dates
``quicklook CUBE``    PNG of a day, a point's time series, or a GIF of a date range
``rechunk CUBE OUT``  a time-series-friendly copy of a cube (dask p2p rechunk)
``bench [CONFIG]``    throughput benchmark with a JSON record
``evaluate CONFIG``   every fusion method on the same region and days, scored against truth

Every command has ``--help``. Errors from bad input print one line naming the file or field
and exit with status 2. Each command is parse -> plan -> print -> execute; its parser and
body live in the submodule for its kind of work (:mod:`~lst_pipeline.cli.stores`,
:mod:`~lst_pipeline.cli.fusion`, :mod:`~lst_pipeline.cli.model`,
:mod:`~lst_pipeline.cli.quicklook`).
"""

from __future__ import annotations

import argparse
import sys

from lst_pipeline._version import __version__
from lst_pipeline.cli import fusion, model, quicklook, stores
from lst_pipeline.errors import LSTPipelineError, describe_os_error

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``lst-pipeline`` parser; each subcommand's ``func`` runs it."""
    parser = argparse.ArgumentParser(
        prog="lst-pipeline",
        description="Daily high-resolution land-surface temperature from Landsat and MODIS.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (stores, fusion, model, quicklook):
        module.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lst-pipeline`` console script.

    Returns the exit status: 0 on success; 2 for every error the user can cause (bad
    configuration or input, a store that is not ours, a full disk or a read-only directory),
    reported as one line naming the file or field; 1 for an internal error (a bug), reported
    with its traceback; 130 when interrupted.
    """
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LSTPipelineError as exc:
        print(f"lst-pipeline {args.command}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # permission denied, disk full, file too large, read-only FS ...
        print(f"lst-pipeline {args.command}: error: {describe_os_error(exc)}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lst-pipeline {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from lst_pipeline.io.location import describe_backend_error

        message = describe_backend_error(exc)
        if message is not None:  # credentials, endpoint, bucket: the user's to mend
            print(f"lst-pipeline {args.command}: error: {message}", file=sys.stderr)
            return 2
        import traceback

        traceback.print_exc()
        print(f"lst-pipeline {args.command}: internal error (a bug in lst_pipeline, not in "
              "your input); the traceback above says where: please report it",
              file=sys.stderr)
        return 1


def _one_line(message: str) -> str:
    """Messages are one line; a library's multi-line text is folded into it."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())
