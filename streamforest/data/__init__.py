"""Training data: data-list YAML, records, tokenisation/label masking, dataset, collator, sampler."""

from streamforest.data.collator import DataCollator
from streamforest.data.data_list import (
    DATA_ROOT_MAP_ENV,
    DataList,
    DataListError,
    DatasetEntry,
    apply_sampling_strategy,
    load_data_list,
    parse_root_map,
    remap_path,
    validate_record,
)
from streamforest.data.dataset import SkippedSample, SupervisedDataset, VideoSampling, modality_length
from streamforest.data.sampler import ModalityLengthGroupedSampler, modality_length_grouped_indices
from streamforest.data.tokenize import (
    normalise_turns,
    preprocess_plain,
    preprocess_qwen,
    tokenize_conversation,
)

__all__ = [
    "DATA_ROOT_MAP_ENV",
    "DataCollator",
    "DataList",
    "DataListError",
    "DatasetEntry",
    "ModalityLengthGroupedSampler",
    "SkippedSample",
    "SupervisedDataset",
    "VideoSampling",
    "apply_sampling_strategy",
    "load_data_list",
    "modality_length",
    "modality_length_grouped_indices",
    "normalise_turns",
    "parse_root_map",
    "preprocess_plain",
    "preprocess_qwen",
    "remap_path",
    "tokenize_conversation",
    "validate_record",
]
