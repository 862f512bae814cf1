"""Sources: business datasets (ERP, CRM) from files, SQL databases and REST, under contracts."""

from werk.sources.config import (
    FileSourceConfig,
    SourcesFile,
    SqlSourceConfig,
    load_sources_file,
    parse_sources,
)
from werk.sources.connector import Batch, ColumnMap, Connector
from werk.sources.contracts import (
    BUILTIN_CONTRACTS,
    Catalog,
    DatasetContract,
    FieldSpec,
    FieldType,
    Measure,
)
from werk.sources.files import FileSource
from werk.sources.landing import Landed, Target, land, message_id
from werk.sources.runner import RunRequest, SourceRunner, build_sources
from werk.sources.sql import SqlSource
from werk.sources.validation import Reason, Rejection, ValidRow, validate_row

__all__ = [
    "BUILTIN_CONTRACTS",
    "Batch",
    "Catalog",
    "ColumnMap",
    "Connector",
    "DatasetContract",
    "FieldSpec",
    "FieldType",
    "FileSource",
    "FileSourceConfig",
    "Landed",
    "Measure",
    "Reason",
    "Rejection",
    "RunRequest",
    "SourceRunner",
    "SourcesFile",
    "SqlSource",
    "SqlSourceConfig",
    "Target",
    "ValidRow",
    "build_sources",
    "land",
    "load_sources_file",
    "message_id",
    "parse_sources",
    "validate_row",
]
