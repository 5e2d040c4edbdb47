"""co2fi: Coarse-to-fine deep feature integration and asynchronous fusion (AAAI-18) in Caffe."""

from setuptools import find_packages, setup

setup(
    name="co2fi",
    version="0.1.0",
    description=(
        "Reference reproduction of 'Action Recognition with Coarse-to-Fine Deep Feature "
        "Integration and Asynchronous Fusion' (AAAI-18) in BVLC Caffe"
    ),
    python_requires=">=3.10",
    packages=find_packages(include=["netgen*", "co2fi_layers*", "co2fi_tools*", "data_prep*"]),
    package_data={"co2fi_tools.reporting": ["*.csv"]},
    install_requires=[
        "numpy>=2.0",
        "protobuf==4.21.12",
        "six>=1.16",
        "opencv-contrib-python-headless>=4.10",
        "h5py>=3.10",
        "tqdm>=4.66",
        "matplotlib>=3.8",
        "pydot>=2.0",
    ],
    extras_require={"dev": ["pytest>=8.0", "ruff>=0.6", "scikit-video>=1.1.11"]},
    entry_points={
        "console_scripts": [
            "co2fi-netgen=netgen.__main__:main",
            "co2fi-synthetic=data_prep.synthetic:main",
            "co2fi-extract=data_prep.extract:main",
            "co2fi-lists=data_prep.lists:main",
            "co2fi-train=co2fi_tools.training.train:main",
            "co2fi-experiment=co2fi_tools.pipeline:main",
            "co2fi-demo=co2fi_tools.demo:main",
            "co2fi-evaluate-scores=co2fi_tools.evaluation.evaluate_scores:main",
            "co2fi-evaluate=co2fi_tools.evaluation.evaluate:main",
            "co2fi-compare=co2fi_tools.reporting.compare:main",
            "co2fi-plot-curves=co2fi_tools.reporting.plots:main",
            "co2fi-net-surgery=co2fi_tools.weights.net_surgery:main",
        ]
    },
)
