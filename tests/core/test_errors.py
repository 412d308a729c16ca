"""The python -m commands' error handling: one line on stderr and the error's own exit code."""

from __future__ import annotations

import pytest

from cellviewer.core.errors import ModelLoadError, OptionError, script_main


def test_script_main_returns_the_body_code_or_the_errors_exit_code(capsys):
    assert script_main(lambda: None) == 0
    assert script_main(lambda: 3) == 3

    def bad():
        raise OptionError("--minutes must be positive", hint="e.g. --minutes 20")

    assert script_main(bad) == OptionError.exit_code
    assert capsys.readouterr().err == "error: --minutes must be positive — e.g. --minutes 20\n"

    def unknown():
        raise ModelLoadError("Unknown model 'x'")

    assert script_main(unknown) == ModelLoadError.exit_code != 0


def test_script_main_lets_other_exceptions_through():
    def boom():
        raise RuntimeError("a bug, not a user error")

    with pytest.raises(RuntimeError):
        script_main(boom)
