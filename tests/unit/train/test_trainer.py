"""load_for_training with --lora on the tiny model: the adapters the arguments ask for, and none of peft's
deprecation noise (transformers 5) in the user's log."""
import warnings

import torch


def test_lora_load_applies_the_arguments_without_peft_warnings(tiny_model_dir, tmp_path):
    from llara_retrieval.train.arguments import LlaraTrainingArguments, ModelArguments
    from llara_retrieval.train.trainer import load_for_training

    model_args = ModelArguments(model_name_or_path=str(tiny_model_dir), lora=True, lora_r=4, lora_dropout=0.1,
                                lora_target_modules="q_proj,v_proj")
    training_args = LlaraTrainingArguments(output_dir=str(tmp_path), use_cpu=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lm, _, _ = load_for_training(model_args, training_args)
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]
    layers = lm.config.num_hidden_layers
    dropouts = [d for m in lm.modules() if isinstance(getattr(m, "lora_dropout", None), torch.nn.ModuleDict)
                for d in m.lora_dropout.values()]
    assert len(dropouts) == 2 * layers and all(isinstance(d, torch.nn.Dropout) and d.p == 0.1 for d in dropouts)
    trainable = [n for n, p in lm.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert lm.training
