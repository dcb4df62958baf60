"""The errors that end a run with one line saying what to fix, rather than a traceback."""

from __future__ import annotations

import logging
import sys

from singer_sdk.exceptions import InvalidInputLine, MissingKeyPropertiesError

from target_adobe_aep.connection import ConfigError, Interrupted, RetriesExhausted
from target_adobe_aep.conversion import InvalidInputRecord, InvalidStreamSchema
from target_adobe_aep.dcs import PublishError
from target_adobe_aep.dead_letter import DeadLetterError
from target_adobe_aep.ims import AuthError
from target_adobe_aep.mapping import MappingError
from target_adobe_aep.rejections import SystemicRejection, TooManyRejectedRecords
from target_adobe_aep.xdm_schema import XdmSchemaError


class InvalidStateMessage(ValueError):
    """A STATE message whose value is not a JSON object: Meltano would store it and fail every later run."""


# Each explains itself: the setting, credential or record to fix. Anything else is a bug and keeps its traceback.
FATAL_ERRORS = (
    ConfigError,
    AuthError,
    PublishError,
    RetriesExhausted,
    Interrupted,
    TooManyRejectedRecords,
    SystemicRejection,
    MappingError,
    XdmSchemaError,
    InvalidInputRecord,
    InvalidStreamSchema,
    DeadLetterError,
    InvalidStateMessage,
    InvalidInputLine,
    MissingKeyPropertiesError,  # names the stream's keys and the record's keys, never values
)

logger = logging.getLogger("target-adobe-aep")


def exit_with(error: BaseException) -> None:
    """Log ``error`` as one line and exit 1."""
    logger.error("%s", " ".join(str(error).split()) or type(error).__name__)
    sys.exit(1)
