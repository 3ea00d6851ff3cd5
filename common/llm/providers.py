"""The model providers by name, as settings and requests name them (`claude`, `gemini`).

Each is imported when first asked for, so a function loads only the SDK it uses. Kept apart
from the package's interface (`common.llm`), which the providers themselves import.
"""

from __future__ import annotations

from common.errors import ConfigurationError
from common.llm import Provider


def provider(name: str) -> Provider:
    """The provider called `name` (`claude` or `gemini`)."""
    if name == "claude":
        from common.llm.anthropic import ClaudeProvider

        return ClaudeProvider()
    if name == "gemini":
        from common.llm.gemini import GeminiProvider

        return GeminiProvider()
    raise ConfigurationError(f"no model provider called {name!r}")
