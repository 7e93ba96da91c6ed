"""Column names of the conflict ledger and of its tidy table (one row per (checkpoint, tensor))."""

LEDGER_COUNTS = (
    "numel", "sft_kept", "ct_kept", "both_kept", "conflicts", "elect_sft", "elect_ct", "sft_discarded",
    "slack_restored",
)
LEDGER_L1 = ("sft_kept_l1", "sft_discarded_l1")
LEDGER_FIELDS = LEDGER_COUNTS + LEDGER_L1
KEY_COLUMNS = ("checkpoint", "ct_tokens", "tensor", "layer", "module")
TABLE_COLUMNS = KEY_COLUMNS + LEDGER_FIELDS
