from collections.abc import Iterable as _Iterable
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar

from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from google.protobuf.internal import containers as _containers

DESCRIPTOR: _descriptor.FileDescriptor

class ClassifyRequest(_message.Message):
    __slots__ = ("image", "top_k")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    top_k: int
    def __init__(self, image: bytes | None = ..., top_k: int | None = ...) -> None: ...

class ClassProbability(_message.Message):
    __slots__ = ("index", "label", "probability")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    label: str
    index: int
    probability: float
    def __init__(self, label: str | None = ..., index: int | None = ..., probability: float | None = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("index", "label", "model_version", "top_k")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    label: str
    index: int
    top_k: _containers.RepeatedCompositeFieldContainer[ClassProbability]
    model_version: str
    def __init__(self, label: str | None = ..., index: int | None = ..., top_k: _Iterable[ClassProbability | _Mapping] | None = ..., model_version: str | None = ...) -> None: ...

class SuperResolveRequest(_message.Message):
    __slots__ = ("image", "scale")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    scale: int
    def __init__(self, image: bytes | None = ..., scale: int | None = ...) -> None: ...

class SuperResolveResponse(_message.Message):
    __slots__ = ("height", "model_version", "png", "width")
    PNG_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    png: bytes
    width: int
    height: int
    model_version: str
    def __init__(self, png: bytes | None = ..., width: int | None = ..., height: int | None = ..., model_version: str | None = ...) -> None: ...

class DeepDreamRequest(_message.Message):
    __slots__ = ("image", "jitter", "layers", "lr", "octave_scale", "octaves", "preset", "seed", "steps")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    OCTAVES_FIELD_NUMBER: _ClassVar[int]
    OCTAVE_SCALE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    JITTER_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PRESET_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    layers: _containers.RepeatedScalarFieldContainer[str]
    octaves: int
    octave_scale: float
    steps: int
    lr: float
    jitter: int
    seed: int
    preset: str
    def __init__(self, image: bytes | None = ..., layers: _Iterable[str] | None = ..., octaves: int | None = ..., octave_scale: float | None = ..., steps: int | None = ..., lr: float | None = ..., jitter: int | None = ..., seed: int | None = ..., preset: str | None = ...) -> None: ...

class DeepDreamProgress(_message.Message):
    __slots__ = ("fraction", "octave", "octaves", "step", "steps")
    OCTAVE_FIELD_NUMBER: _ClassVar[int]
    OCTAVES_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    octave: int
    octaves: int
    step: int
    steps: int
    fraction: float
    def __init__(self, octave: int | None = ..., octaves: int | None = ..., step: int | None = ..., steps: int | None = ..., fraction: float | None = ...) -> None: ...

class DeepDreamUpdate(_message.Message):
    __slots__ = ("png", "progress")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PNG_FIELD_NUMBER: _ClassVar[int]
    progress: DeepDreamProgress
    png: bytes
    def __init__(self, progress: DeepDreamProgress | _Mapping | None = ..., png: bytes | None = ...) -> None: ...

class GetMetadataRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("file", "name", "sha256", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    file: str
    sha256: str
    version: str
    def __init__(self, name: str | None = ..., file: str | None = ..., sha256: str | None = ..., version: str | None = ...) -> None: ...

class Metadata(_message.Message):
    __slots__ = ("classes", "cnnpipe_version", "dream_backbone", "dream_layers", "dream_presets", "models", "scales")
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    SCALES_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    CNNPIPE_VERSION_FIELD_NUMBER: _ClassVar[int]
    DREAM_BACKBONE_FIELD_NUMBER: _ClassVar[int]
    DREAM_LAYERS_FIELD_NUMBER: _ClassVar[int]
    DREAM_PRESETS_FIELD_NUMBER: _ClassVar[int]
    classes: _containers.RepeatedScalarFieldContainer[str]
    scales: _containers.RepeatedScalarFieldContainer[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    cnnpipe_version: str
    dream_backbone: str
    dream_layers: _containers.RepeatedScalarFieldContainer[str]
    dream_presets: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, classes: _Iterable[str] | None = ..., scales: _Iterable[int] | None = ..., models: _Iterable[ModelInfo | _Mapping] | None = ..., cnnpipe_version: str | None = ..., dream_backbone: str | None = ..., dream_layers: _Iterable[str] | None = ..., dream_presets: _Iterable[str] | None = ...) -> None: ...
