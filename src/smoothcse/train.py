"""A stable import path: ``from smoothcse.train import train``. The code lives in :mod:`smoothcse.training`."""

from smoothcse.training.loop import NumericalFault, TrainingInterrupted, TrainResult, train

__all__ = ["NumericalFault", "TrainResult", "TrainingInterrupted", "train"]
