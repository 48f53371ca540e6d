"""Test-wide settings, applied before any notebook kernel starts (kernels inherit them).

Tests are offline by default: the offline profile, no hub access, and a
throw-away results file so a test run never touches the learner's own
results/my_results.jsonl. Set LLMFLATION_PROFILE yourself to test another profile.
"""

import os
import tempfile

os.environ.setdefault("LLMFLATION_PROFILE", "offline")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["LLMFLATION_RESULTS"] = os.path.join(
    tempfile.mkdtemp(prefix="llmflation-test-"), "results.jsonl")
