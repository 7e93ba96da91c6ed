"""Loaders for the real benchmark formats (SIB-200, Belebele, MGSM, GSM8K, MLiC-Eval) and the demo world's eval sets.

Every loader returns the normalised items of :mod:`lrmerge.data.schema`; `load_task` dispatches by benchmark.
"""

from lrmerge.data.belebele import BELEBELE_HUB_ID, load_belebele, split_by_passage
from lrmerge.data.common import HubUnavailableError, parse_int
from lrmerge.data.gsm8k import GSM8K_HUB_ID, gsm8k_sft_records, load_gsm8k, parse_gsm8k_answer
from lrmerge.data.loaders import TaskData, load_task, load_task_items, task_labels
from lrmerge.data.mgsm import MGSM_HUB_ID, load_mgsm
from lrmerge.data.mlic import MLIC_HUB_ID, load_mlic, mlic_tc_labels
from lrmerge.data.schema import ChoiceItem, ClassificationItem, EvalItem, MathItem
from lrmerge.data.sib200 import SIB200_HUB_ID, SIB200_LABELS, load_sib200

__all__ = [
    "BELEBELE_HUB_ID", "GSM8K_HUB_ID", "MGSM_HUB_ID", "MLIC_HUB_ID", "SIB200_HUB_ID", "SIB200_LABELS",
    "ChoiceItem", "ClassificationItem", "EvalItem", "HubUnavailableError", "MathItem", "TaskData",
    "gsm8k_sft_records", "load_belebele", "load_gsm8k", "load_mgsm", "load_mlic", "load_sib200", "load_task",
    "load_task_items", "mlic_tc_labels", "parse_gsm8k_answer", "parse_int", "split_by_passage", "task_labels",
]
