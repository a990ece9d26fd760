"""Make the sibling modules (configs, numpy_batched, torch_eager) importable
under any pytest ``--import-mode``."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
