"""Command lines behave alike: --version, and help that shows only meaningful defaults."""
from __future__ import annotations

import subprocess
import sys

import pytest

from datagen import code_version
from datagen.cli import main as datagen_main


def test_datagen_version(capsys):
    with pytest.raises(SystemExit) as exc:
        datagen_main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"decouple-ops datagen {code_version()}"


@pytest.mark.parametrize("command", ["build", "info", "verify", "show"])
def test_datagen_help_has_no_meaningless_defaults(command, capsys):
    with pytest.raises(SystemExit):
        datagen_main([command, "--help"])
    text = capsys.readouterr().out
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "usage:" in text


def test_datagen_version_in_a_fresh_process():
    out = subprocess.run([sys.executable, "-m", "datagen", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith("decouple-ops datagen ")


def test_prepare_version_and_help():
    out = subprocess.run([sys.executable, "-m", "benchmarks.prepare", "--version"],
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("decouple-ops benchmarks.prepare ")
    text = subprocess.run([sys.executable, "-m", "benchmarks.prepare", "--help"],
                          capture_output=True, text=True, check=True).stdout
    assert "(default: None)" not in text and "--jobs" in text


def test_help_formatter_has_one_home_outside_datagens_command_line():
    """The help formatter of every command line lives in ``datagen.cli_common`` (the lowest
    package with a command line): ``model``'s and ``benchmarks.prepare``'s command lines take it
    from there instead of importing datagen's command line for it (issue 27), and their help
    still shows only meaningful defaults."""
    code = ("import sys, model.cli, model.cli_zoo, benchmarks.prepare\n"
            "print('datagen.cli' in sys.modules)\n"
            "import datagen.cli\n"
            "from datagen.cli_common import HelpFormatter as H\n"
            "print(all(m.HelpFormatter is H for m in (model.cli, model.cli_zoo, "
            "benchmarks.prepare, datagen.cli)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "True"], out
    text = subprocess.run([sys.executable, "-m", "model", "train", "--help"],
                          capture_output=True, text=True, check=True).stdout
    assert "(default: None)" not in text and "(default: False)" not in text and "usage:" in text
