"""A Redis script carries only the helpers of lib.lua that it calls."""

from __future__ import annotations

import re
from importlib import resources

from conveyor.stores.redis.scripts import _ALONE, _shaken, script_source

LIB = """-- the layout
local rcall = redis.call
local P = string.sub(KEYS[1], 1, -5)

local function key(id) return P .. id end

-- Used by nothing.
local function unused(id)
  return rcall("GET", key(id))
end

-- Calls key.
local function read(id)
  local v = rcall("GET", key(id))
  return v
end
"""


def test_a_script_gets_the_helpers_it_calls_and_those_they_call_only() -> None:
    source = _shaken(LIB, "return read(ARGV[1])\n")
    assert "local rcall = redis.call" in source and "local P =" in source
    assert "local function read(id)" in source and "-- Calls key." in source
    assert "local function key(id)" in source  # through read
    assert "unused" not in source
    assert source.index("local function key") < source.index("local function read")
    assert _shaken(LIB, "return 1\n").count("local function") == 0


def test_every_helper_a_script_names_is_defined_in_it() -> None:
    lib = resources.files("conveyor.stores.redis").joinpath("lua/lib.lua").read_text()
    helpers = set(re.findall(r"^local function (\w+)\(", lib, re.M))
    folder = resources.files("conveyor.stores.redis").joinpath("lua")
    names = [f.name.removesuffix(".lua") for f in folder.iterdir() if f.name.endswith(".lua")]
    for name in sorted(set(names) - {"lib", "limits", "backoff"} - _ALONE):
        source = script_source(name)
        defined = set(re.findall(r"^local function (\w+)\(", source, re.M))
        code = re.sub(r"--[^\n]*", "", source)
        named = {w for w in re.findall(r"\w+", code) if w in helpers}
        assert named <= defined, (name, named - defined)
