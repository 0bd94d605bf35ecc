"""Model backends. Import the heavy ones from their modules:
``cascade_core.backends.transformers.TransformersModel`` and
``cascade_core.backends.openai.OpenAIModel``."""

from cascade_core.backends.base import CompletionChunk, LargeModel, SmallModel, StepsEnd, TokenModelBase

__all__ = ["CompletionChunk", "LargeModel", "SmallModel", "StepsEnd", "TokenModelBase"]
