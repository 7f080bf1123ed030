from dockyard.engine.environ import replace_or_append


def test_overrides_replace_in_place_append_and_unset():
    defaults = ["PATH=/bin", "HOSTNAME=abc", "TERM=xterm"]
    got = replace_or_append(defaults, ["HOSTNAME=mine", "TERM", "NEW=a=b", "GONE"])
    assert got == ["PATH=/bin", "HOSTNAME=mine", "NEW=a=b"]
    assert defaults == ["PATH=/bin", "HOSTNAME=abc", "TERM=xterm"]  # not changed


def test_empty_value_is_kept_as_set():
    assert replace_or_append(["A=1"], ["A="]) == ["A="]
