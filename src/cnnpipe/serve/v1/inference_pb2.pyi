from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClassifyRequest(_message.Message):
    __slots__ = ("image", "top_k")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    top_k: int
    def __init__(self, image: _Optional[bytes] = ..., top_k: _Optional[int] = ...) -> None: ...

class ClassProbability(_message.Message):
    __slots__ = ("label", "index", "probability")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    label: str
    index: int
    probability: float
    def __init__(self, label: _Optional[str] = ..., index: _Optional[int] = ..., probability: _Optional[float] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("label", "index", "top_k", "model_version")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    label: str
    index: int
    top_k: _containers.RepeatedCompositeFieldContainer[ClassProbability]
    model_version: str
    def __init__(self, label: _Optional[str] = ..., index: _Optional[int] = ..., top_k: _Optional[_Iterable[_Union[ClassProbability, _Mapping]]] = ..., model_version: _Optional[str] = ...) -> None: ...

class ExplainRequest(_message.Message):
    __slots__ = ("image", "target")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    target: int
    def __init__(self, image: _Optional[bytes] = ..., target: _Optional[int] = ...) -> None: ...

class ExplainResponse(_message.Message):
    __slots__ = ("label", "index", "top_k", "model_version", "target", "target_label", "layer", "map_height", "map_width", "map", "overlay_png")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TARGET_LABEL_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    MAP_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MAP_WIDTH_FIELD_NUMBER: _ClassVar[int]
    MAP_FIELD_NUMBER: _ClassVar[int]
    OVERLAY_PNG_FIELD_NUMBER: _ClassVar[int]
    label: str
    index: int
    top_k: _containers.RepeatedCompositeFieldContainer[ClassProbability]
    model_version: str
    target: int
    target_label: str
    layer: str
    map_height: int
    map_width: int
    map: _containers.RepeatedScalarFieldContainer[float]
    overlay_png: bytes
    def __init__(self, label: _Optional[str] = ..., index: _Optional[int] = ..., top_k: _Optional[_Iterable[_Union[ClassProbability, _Mapping]]] = ..., model_version: _Optional[str] = ..., target: _Optional[int] = ..., target_label: _Optional[str] = ..., layer: _Optional[str] = ..., map_height: _Optional[int] = ..., map_width: _Optional[int] = ..., map: _Optional[_Iterable[float]] = ..., overlay_png: _Optional[bytes] = ...) -> None: ...

class SuperResolveRequest(_message.Message):
    __slots__ = ("image", "scale", "self_ensemble")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    SELF_ENSEMBLE_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    scale: int
    self_ensemble: bool
    def __init__(self, image: _Optional[bytes] = ..., scale: _Optional[int] = ..., self_ensemble: _Optional[bool] = ...) -> None: ...

class SuperResolveResponse(_message.Message):
    __slots__ = ("png", "width", "height", "model_version")
    PNG_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    png: bytes
    width: int
    height: int
    model_version: str
    def __init__(self, png: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., model_version: _Optional[str] = ...) -> None: ...

class DeepDreamRequest(_message.Message):
    __slots__ = ("image", "layers", "octaves", "octave_scale", "steps", "lr", "jitter", "seed", "preset")
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
    def __init__(self, image: _Optional[bytes] = ..., layers: _Optional[_Iterable[str]] = ..., octaves: _Optional[int] = ..., octave_scale: _Optional[float] = ..., steps: _Optional[int] = ..., lr: _Optional[float] = ..., jitter: _Optional[int] = ..., seed: _Optional[int] = ..., preset: _Optional[str] = ...) -> None: ...

class DeepDreamProgress(_message.Message):
    __slots__ = ("octave", "octaves", "step", "steps", "fraction")
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
    def __init__(self, octave: _Optional[int] = ..., octaves: _Optional[int] = ..., step: _Optional[int] = ..., steps: _Optional[int] = ..., fraction: _Optional[float] = ...) -> None: ...

class DeepDreamUpdate(_message.Message):
    __slots__ = ("progress", "png")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PNG_FIELD_NUMBER: _ClassVar[int]
    progress: DeepDreamProgress
    png: bytes
    def __init__(self, progress: _Optional[_Union[DeepDreamProgress, _Mapping]] = ..., png: _Optional[bytes] = ...) -> None: ...

class StyleTransferRequest(_message.Message):
    __slots__ = ("image", "style", "steps", "content_weight", "style_weight", "init", "seed")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    STYLE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    STYLE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    INIT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    style: bytes
    steps: int
    content_weight: float
    style_weight: float
    init: str
    seed: int
    def __init__(self, image: _Optional[bytes] = ..., style: _Optional[bytes] = ..., steps: _Optional[int] = ..., content_weight: _Optional[float] = ..., style_weight: _Optional[float] = ..., init: _Optional[str] = ..., seed: _Optional[int] = ...) -> None: ...

class StyleTransferUpdate(_message.Message):
    __slots__ = ("progress", "png")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PNG_FIELD_NUMBER: _ClassVar[int]
    progress: DeepDreamProgress
    png: bytes
    def __init__(self, progress: _Optional[_Union[DeepDreamProgress, _Mapping]] = ..., png: _Optional[bytes] = ...) -> None: ...

class GetMetadataRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "file", "sha256", "version", "provenance", "backend", "device", "weights")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    file: str
    sha256: str
    version: str
    provenance: Provenance
    backend: str
    device: str
    weights: str
    def __init__(self, name: _Optional[str] = ..., file: _Optional[str] = ..., sha256: _Optional[str] = ..., version: _Optional[str] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ..., backend: _Optional[str] = ..., device: _Optional[str] = ..., weights: _Optional[str] = ...) -> None: ...

class Provenance(_message.Message):
    __slots__ = ("commit", "dirty", "experiment", "params", "metrics")
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    DIRTY_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    commit: str
    dirty: bool
    experiment: str
    params: _struct_pb2.Struct
    metrics: _struct_pb2.Struct
    def __init__(self, commit: _Optional[str] = ..., dirty: _Optional[bool] = ..., experiment: _Optional[str] = ..., params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metrics: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Metadata(_message.Message):
    __slots__ = ("classes", "scales", "models", "cnnpipe_version", "dream_backbone", "dream_layers", "dream_presets", "dream_default_layer", "limits")
    class LimitsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    SCALES_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    CNNPIPE_VERSION_FIELD_NUMBER: _ClassVar[int]
    DREAM_BACKBONE_FIELD_NUMBER: _ClassVar[int]
    DREAM_LAYERS_FIELD_NUMBER: _ClassVar[int]
    DREAM_PRESETS_FIELD_NUMBER: _ClassVar[int]
    DREAM_DEFAULT_LAYER_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    classes: _containers.RepeatedScalarFieldContainer[str]
    scales: _containers.RepeatedScalarFieldContainer[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    cnnpipe_version: str
    dream_backbone: str
    dream_layers: _containers.RepeatedScalarFieldContainer[str]
    dream_presets: _containers.RepeatedScalarFieldContainer[str]
    dream_default_layer: str
    limits: _containers.ScalarMap[str, int]
    def __init__(self, classes: _Optional[_Iterable[str]] = ..., scales: _Optional[_Iterable[int]] = ..., models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., cnnpipe_version: _Optional[str] = ..., dream_backbone: _Optional[str] = ..., dream_layers: _Optional[_Iterable[str]] = ..., dream_presets: _Optional[_Iterable[str]] = ..., dream_default_layer: _Optional[str] = ..., limits: _Optional[_Mapping[str, int]] = ...) -> None: ...
