"""The errors that end a run with one line saying what to fix, rather than a traceback."""

from __future__ import annotations

import logging
import sys

from target_adobe_aep.connection import ConfigError, RetriableError
from target_adobe_aep.conversion import InvalidInputRecord, InvalidStreamSchema
from target_adobe_aep.dcs import PublishError
from target_adobe_aep.ims import AuthError
from target_adobe_aep.mapping import MappingError
from target_adobe_aep.rejections import SystemicRejection, TooManyRejectedRecords
from target_adobe_aep.xdm_schema import XdmSchemaError

# Each explains itself: the setting, credential or record to fix. Anything else is a bug and keeps its traceback.
FATAL_ERRORS = (
    ConfigError,
    AuthError,
    PublishError,
    RetriableError,
    TooManyRejectedRecords,
    SystemicRejection,
    MappingError,
    XdmSchemaError,
    InvalidInputRecord,
    InvalidStreamSchema,
)

logger = logging.getLogger("target-adobe-aep")


def exit_with(error: BaseException) -> None:
    """Log ``error`` as one line and exit 1."""
    logger.error("%s", " ".join(str(error).split()) or type(error).__name__)
    sys.exit(1)
