"""Dataset contracts and the sources file: what loads, and what is refused with which key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from werk.core.errors import NotFound, ValidationFailed
from werk.sources.config import FileSourceConfig, SqlSourceConfig, load_sources_file
from werk.sources.contracts import BUILTIN_CONTRACTS, Catalog

WORK_ORDERS = """
[[datasets]]
name = "work_orders"
version = 2
key = "work_order"
time = "released_at"
fields = { work_order = "string", released_at = { type = "datetime", format = "%d.%m.%Y %H:%M" }, qty = "integer", line = "string", note = { type = "string", required = false } }
measures = [{ field = "qty", tag = "mes/orders/{line}/released_qty" }]

[[sources]]
name = "mes-orders"
kind = "file"
dataset = "work_orders"
path = "drop/*.csv"
every = "5m"
delimiter = ";"
columns = { "Auftrag" = "work_order" }

[[sources]]
name = "erp-stock"
kind = "sql"
dataset = "inventory"
url_env = "WERK_TEST_ERP_URL"
table = "erp.stock"
cursor = "changed_at"
"""


def test_builtin_contracts_cover_erp_and_crm_tables() -> None:
    catalog = Catalog(list(BUILTIN_CONTRACTS))
    assert [c.name for c in catalog.all()] == ["customers", "inventory", "orders", "shipments"]
    inventory = catalog.get("inventory")
    assert inventory.key == ("warehouse", "sku")
    assert [m.placeholders for m in inventory.measures] == [("warehouse", "sku")] * 2
    with pytest.raises(NotFound, match="known datasets: customers, inventory"):
        catalog.get("invoices")


def test_a_sources_file_declares_datasets_and_sources(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(WORK_ORDERS)
    parsed = load_sources_file(path)
    contract = parsed.catalog().get("work_orders")
    assert (contract.version, contract.key, contract.fields["note"].required) == (
        2,
        ("work_order",),
        False,
    )
    files, sql = parsed.sources
    assert isinstance(files, FileSourceConfig) and isinstance(sql, SqlSourceConfig)
    assert files.path == str(tmp_path / "drop/*.csv")  # relative to the sources file
    assert (files.every_s, sql.every_s) == (300.0, None)
    assert "orders" in parsed.catalog()  # built-ins stay


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("key = \"work_order\"", "key = \"nope\""), "datasets.0: key field 'nope' is not a field"),
        (("qty = \"integer\"", "qty = \"string\""), "measure field 'qty' is string"),
        (("{line}", "{note}"), "placeholder of 'mes/orders/{note}/released_qty' 'note' must be a required"),
        (("every = \"5m\"", "every = \"often\""), "sources.0.file.every: duration 'often'"),
        (("dataset = \"inventory\"", "dataset = \"stock\""), "source 'erp-stock': no dataset 'stock'"),
        (("\"Auftrag\" = \"work_order\"", "\"Auftrag\" = \"order\""), "columns map to order"),
        (("table = \"erp.stock\"", "query = \"SELECT 1\"\ntable = \"erp.stock\""), "exactly one of table and query"),
        (("name = \"mes-orders\"", "name = \"push\""), "kept for records pushed over REST"),
        (("name = \"erp-stock\"", "name = \"mes-orders\""), "repeated: mes-orders"),
    ],
)  # fmt: skip
def test_mistakes_are_refused_with_the_key_that_is_wrong(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(WORK_ORDERS.replace(*change, 1))
    with pytest.raises(ValidationFailed, match="sources.toml: .*" + re.escape(message)) as caught:
        load_sources_file(path)
    assert caught.value.code == "bad_config"


def test_an_unreadable_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="cannot read"):
        load_sources_file(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[[sources]\n")
    with pytest.raises(ValidationFailed, match="not valid TOML"):
        load_sources_file(broken)


def test_sql_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    config = SqlSourceConfig(
        name="erp", kind="sql", dataset="orders", url_env="WERK_TEST_ERP_URL", table="t"
    )
    monkeypatch.delenv("WERK_TEST_ERP_URL", raising=False)
    with pytest.raises(ValidationFailed, match="WERK_TEST_ERP_URL is not set"):
        config.database_url()
    monkeypatch.setenv("WERK_TEST_ERP_URL", "sqlite:///erp.db")
    assert config.database_url() == "sqlite:///erp.db"
