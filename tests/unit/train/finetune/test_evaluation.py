"""The dev evaluation during fine-tuning encodes as the training step computes: under the run's bf16/fp16
autocast where it trains mixed, in the weights' own dtype otherwise."""
from types import SimpleNamespace

import pytest
import torch
from transformers import TrainerControl, TrainerState

from llara_retrieval.train.finetune.evaluation import EVAL_LOG, DevEvalCallback


class RecordingEvaluator:
    """Stands in for DevEvaluator (whose encoding the fine-tuning CLI test covers): records the autocast state."""

    def __init__(self):
        self.seen = []

    def __call__(self, lm, tokenizer) -> dict[str, float]:
        self.seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return {"eval_nDCG@10": 0.5}


@pytest.mark.parametrize("autocast, expected", [("bf16", (True, torch.bfloat16)), (None, (False, None))])
def test_dev_evaluation_runs_in_the_training_autocast(tmp_path, autocast, expected):
    evaluator = RecordingEvaluator()
    callback = DevEvalCallback(evaluator, lm=None, tokenizer=None, output_dir=str(tmp_path), eval_every=0)
    args = SimpleNamespace(autocast=autocast, device=torch.device("cpu"))
    state = TrainerState(is_world_process_zero=True, global_step=3)
    callback.on_train_end(args, state, TrainerControl())
    enabled, dtype = evaluator.seen[0]
    assert enabled is expected[0] and (expected[1] is None or dtype == expected[1])
    assert '"step": 3' in (tmp_path / EVAL_LOG).read_text()
    assert not torch.is_autocast_enabled("cpu")  # restored after the evaluation
