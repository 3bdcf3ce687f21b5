"""Real inputs -> input stack: plan what to read, then read it onto the grid and commit.

:func:`~lst_pipeline.ingest.plan.plan_ingest` finds the files (globs, STAC items,
pre-gridded series), reads only their headers, checks every one of them (product,
collection, grid name, band files and their registration, MTL, completeness) and groups
them by sensor and date; the same scene or granule given twice is read once (the latest
processing); nothing is written. :func:`~lst_pipeline.ingest.execute.execute_ingest` locks
the stack, reads each date onto the target grid (:mod:`lst_pipeline.ingest.read`) into a
staging store inside the stack and commits them through
:class:`~lst_pipeline.io.stack_writer.StackCommit`: new dates are inserted in order, dates
already present are replaced (ingest is idempotent). A failure before the commit leaves the
stack exactly as it was (a stack created by this ingest is removed); a crash during the
commit leaves it marked incomplete, which readers refuse, and the next ingest into it
finishes the commit from the journal first, whatever its inputs.

Memory is bounded by one date of the fine grid (read, masked, resampled) and the commit's
copy blocks, whatever the number of dates.
"""

from lst_pipeline.ingest.execute import IngestSummary, execute_ingest, ingest
from lst_pipeline.ingest.plan import DateSources, IngestPlan, plan_ingest
from lst_pipeline.ingest.read import DateOnGrid, read_date
from lst_pipeline.io.stack import RECORD_PATH

__all__ = [
    "RECORD_PATH",
    "DateOnGrid",
    "DateSources",
    "IngestPlan",
    "IngestSummary",
    "execute_ingest",
    "ingest",
    "plan_ingest",
    "read_date",
]
