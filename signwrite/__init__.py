"""signwrite: turn sign-language tutorial videos into a working clip classifier.

Stages (each a module with a callable core and a thin ``main``):
fetch -> extract_frames -> train -> evaluate / predict / live.
Nothing heavy is imported here: TensorFlow loads only in the stages that need it.
"""

from signwrite.errors import SignwriteError
from signwrite.process import catch_early_interrupt

catch_early_interrupt()  # a Ctrl-C while a command is still importing: one line, exit 130

__version__ = "0.1.0"
__all__ = ["SignwriteError", "__version__"]
