"""Metadata lives in pyproject.toml; this file only installs the Pyserini hook's ``.pth`` beside the package."""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HOOK_PTH = "llara_retrieval_pyserini.pth"  # one line: installs the lazy Pyserini hook (llara_retrieval.pyserini.hook)


class BuildPyWithHook(build_py):
    """Also put the hook's .pth at the top of site-packages, for wheels and for editable installs."""

    def run(self):
        super().run()
        target = Path(self.build_lib)
        if getattr(self, "editable_mode", False):  # editable wheels take only the install dir's files
            target = Path(self.get_finalized_command("install").install_lib)
        target.mkdir(parents=True, exist_ok=True)
        self.copy_file(HOOK_PTH, str(target / HOOK_PTH))
        self._hook_output = str(target / HOOK_PTH)

    def get_outputs(self, include_bytecode=True):
        extra = [self._hook_output] if getattr(self, "_hook_output", None) else []
        return super().get_outputs(include_bytecode) + extra


setup(cmdclass={"build_py": BuildPyWithHook})
