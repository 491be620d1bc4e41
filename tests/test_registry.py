from __future__ import annotations

import sys
import types

import pytest

from benchmark.registry import Registry, RegistryError


def make() -> Registry:
    reg: Registry = Registry("widget")

    @reg.register("alpha")
    class Alpha:
        """First widget.

        More text that is not shown."""

    @reg.register("alphabet")
    class Alphabet:
        description = "Second widget"

    return reg


def test_register_and_get() -> None:
    reg = make()
    assert reg.names() == ["alpha", "alphabet"]
    assert reg.get("alpha").__name__ == "Alpha"
    assert "alpha" in reg and "beta" not in reg
    assert reg.describe("alpha") == "First widget."
    assert reg.describe("alphabet") == "Second widget"


def test_duplicate_name_is_an_error() -> None:
    reg = make()
    with pytest.raises(RegistryError, match="registered twice"):
        reg.register("alpha")(type("Other", (), {}))


def test_unknown_name_lists_close_matches() -> None:
    reg = make()
    with pytest.raises(RegistryError) as info:
        reg.get("alpah")
    message = str(info.value)
    assert "unknown widget 'alpah'" in message
    assert "Did you mean: alpha" in message
    assert "list widgets" in message


def test_unknown_name_without_close_match() -> None:
    with pytest.raises(RegistryError) as info:
        make().get("zzzzzz")
    assert "Did you mean" not in str(info.value)


def test_base_class_is_checked() -> None:
    class Base:
        pass

    reg: Registry = Registry("thing", base=Base)
    reg.register("ok")(type("Ok", (Base,), {}))
    with pytest.raises(TypeError, match="must subclass Base"):
        reg.register("bad")(type("Bad", (), {}))


def test_builtins_are_imported_lazily(tmp_path, monkeypatch) -> None:
    lazy: Registry = Registry("lazy", builtins=("plugin_mod_x",))
    holder = types.ModuleType("lazy_holder")
    holder.REG = lazy
    monkeypatch.setitem(sys.modules, "lazy_holder", holder)
    (tmp_path / "plugin_mod_x.py").write_text(
        "from lazy_holder import REG\n"
        "@REG.register('lazy_one')\n"
        "class One:\n    'A lazily registered entry.'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert lazy._entries == {}
    assert lazy.names() == ["lazy_one"]


def test_entry_point_plugins_register(monkeypatch) -> None:
    class FakeEP:
        name = "from_plugin"

        def load(self):
            return type("Plugin", (), {"description": "an out-of-tree method"})

    import benchmark.registry as registry_module

    monkeypatch.setattr(registry_module.metadata, "entry_points",
                        lambda group: [FakeEP()] if group == "lgm_bench.test" else [])
    reg: Registry = Registry("method", entry_point_group="lgm_bench.test")
    assert reg.names() == ["from_plugin"]
    assert reg.describe("from_plugin") == "an out-of-tree method"

