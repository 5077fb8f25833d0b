"""The classification head is found on common HF classifiers and plain modules; wrong heads are refused clearly."""

from __future__ import annotations

import pytest
import torch
from conftest import IdentityHead, quiet_args, vector_dataset
from torch import nn
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    ConvNextConfig,
    ConvNextForImageClassification,
    ResNetConfig,
    ResNetForImageClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
    ViTConfig,
    ViTForImageClassification,
)

from hf_prune import PruneTrainer
from hf_prune.errors import HeadNotFoundError, UnsupportedModelError
from hf_prune.tracking.head import HeadProbe, find_head


TEXT = {"vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}


@pytest.mark.parametrize(
    ("model", "expected", "inputs"),
    [
        (BertForSequenceClassification(BertConfig(**TEXT, num_labels=3)), "classifier",
         {"input_ids": torch.tensor([[1, 2, 3]])}),
        (RobertaForSequenceClassification(RobertaConfig(**TEXT, num_labels=3, pad_token_id=1)), "classifier.out_proj",
         {"input_ids": torch.tensor([[0, 5, 6, 2]])}),
        (ViTForImageClassification(ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=16,
                                             num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                             num_labels=3)), "classifier",
         {"pixel_values": torch.randn(1, 1, 8, 8)}),
        (ResNetForImageClassification(ResNetConfig(num_channels=1, embedding_size=8, hidden_sizes=[8, 16],
                                                   depths=[1, 1], layer_type="basic", num_labels=3)), "classifier.1",
         {"pixel_values": torch.randn(2, 1, 16, 16)}),
        (ConvNextForImageClassification(ConvNextConfig(num_channels=1, hidden_sizes=[8, 16], depths=[1, 1], num_stages=2,
                                                       num_labels=3)), "classifier",
         {"pixel_values": torch.randn(1, 1, 32, 32)}),
        (IdentityHead(), "classifier", {"x": torch.randn(2, 5)}),
    ],
    ids=["bert", "roberta", "vit", "resnet", "convnext", "plain-module"],
)
def test_head_found_and_produces_logits(model, expected, inputs):
    head = find_head(model, num_labels=3)
    assert head.name == expected
    model.eval()
    probe = HeadProbe(head)
    probe.arm()
    with torch.no_grad():
        out = model(**inputs)
    logits = out["logits"] if isinstance(out, dict) else out.logits
    torch.testing.assert_close(probe.logits, logits)
    assert probe.features.shape == (logits.shape[0], head.feature_dim)


def test_plain_module_last_linear_fallback():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    assert find_head(model).name == "2"
    assert find_head(model, num_labels=8).name == "0"


def test_no_linear_layer_is_an_error():
    with pytest.raises(HeadNotFoundError, match="has no nn.Linear layer.*head_module="):
        find_head(nn.Sequential(nn.Conv2d(1, 3, 3), nn.Flatten()))


def test_explicit_head_module_errors():
    with pytest.raises(HeadNotFoundError, match=r"`head_module='nope'` does not name a submodule"):
        find_head(IdentityHead(), head_module="nope")
    model = nn.Sequential(nn.ReLU())
    with pytest.raises(HeadNotFoundError, match="with no nn.Linear inside"):
        find_head(model, head_module="0")


class ScaledLogits(IdentityHead):
    def forward(self, x, labels=None):
        logits = self.classifier(x) * 2.0
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out


def test_head_that_is_not_the_logits_producer_is_refused(tmp_path):
    dataset, _, _ = vector_dataset()
    trainer = PruneTrainer(model=ScaledLogits(), args=quiet_args(tmp_path), train_dataset=dataset)
    with pytest.raises(UnsupportedModelError, match="does not produce the model's logits"):
        trainer.train()


def test_regression_problem_type_is_refused(tmp_path):
    dataset, _, _ = vector_dataset()
    model = BertForSequenceClassification(BertConfig(**TEXT, num_labels=3, problem_type="regression"))
    ids = dataset.map(lambda row: {"input_ids": [1, 2, 3]}).remove_columns("x")
    trainer = PruneTrainer(model=model, args=quiet_args(tmp_path), train_dataset=ids)
    with pytest.raises(UnsupportedModelError, match="problem_type.*'regression'"):
        trainer.train()


def test_bert_training_records(tmp_path):
    """A real HF sequence classifier with dropout trains and records through the stock loop."""
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**TEXT, num_labels=2))
    dataset = vector_dataset(n=24, num_classes=2)[0].map(lambda row, i: {"input_ids": [1, 2 + i % 7, 3]},
                                                         with_indices=True).remove_columns("x")
    trainer = PruneTrainer(model=model, args=quiet_args(tmp_path, per_device_train_batch_size=6), train_dataset=dataset)
    trainer.train()
    record = trainer.record
    assert record.meta["head"]["name"] == "classifier"
    assert record.feature_dim == 16 and record.num_classes == 2
    assert record.num_occurrences == 48
    assert record.meta["loss_check"]["not_cross_entropy"] == 0
