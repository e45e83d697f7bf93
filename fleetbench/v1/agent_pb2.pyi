from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_KIND_UNSPECIFIED: _ClassVar[JobKind]
    JOB_KIND_PERF: _ClassVar[JobKind]
    JOB_KIND_SWEEP: _ClassVar[JobKind]
    JOB_KIND_EVAL: _ClassVar[JobKind]
    JOB_KIND_LONG_CONTEXT: _ClassVar[JobKind]
    JOB_KIND_PREFLIGHT: _ClassVar[JobKind]
    JOB_KIND_HARDWARE: _ClassVar[JobKind]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
    JOB_STATE_INTERRUPTED: _ClassVar[JobState]
    JOB_STATE_READY: _ClassVar[JobState]
JOB_KIND_UNSPECIFIED: JobKind
JOB_KIND_PERF: JobKind
JOB_KIND_SWEEP: JobKind
JOB_KIND_EVAL: JobKind
JOB_KIND_LONG_CONTEXT: JobKind
JOB_KIND_PREFLIGHT: JobKind
JOB_KIND_HARDWARE: JobKind
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
JOB_STATE_INTERRUPTED: JobState
JOB_STATE_READY: JobState

class PingRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PingReply(_message.Message):
    __slots__ = ("agent_version", "hostname", "wall_time", "api_version", "evalscope_version")
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    WALL_TIME_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    EVALSCOPE_VERSION_FIELD_NUMBER: _ClassVar[int]
    agent_version: str
    hostname: str
    wall_time: float
    api_version: str
    evalscope_version: str
    def __init__(self, agent_version: _Optional[str] = ..., hostname: _Optional[str] = ..., wall_time: _Optional[float] = ..., api_version: _Optional[str] = ..., evalscope_version: _Optional[str] = ...) -> None: ...

class InventoryRequest(_message.Message):
    __slots__ = ("endpoint_url",)
    ENDPOINT_URL_FIELD_NUMBER: _ClassVar[int]
    endpoint_url: str
    def __init__(self, endpoint_url: _Optional[str] = ...) -> None: ...

class Gpu(_message.Message):
    __slots__ = ("index", "name", "uuid", "memory_total_mib", "driver_version", "cuda_version")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_MIB_FIELD_NUMBER: _ClassVar[int]
    DRIVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    CUDA_VERSION_FIELD_NUMBER: _ClassVar[int]
    index: int
    name: str
    uuid: str
    memory_total_mib: int
    driver_version: str
    cuda_version: str
    def __init__(self, index: _Optional[int] = ..., name: _Optional[str] = ..., uuid: _Optional[str] = ..., memory_total_mib: _Optional[int] = ..., driver_version: _Optional[str] = ..., cuda_version: _Optional[str] = ...) -> None: ...

class InventoryReply(_message.Message):
    __slots__ = ("hostname", "cpu_model", "cpu_count", "memory_total_bytes", "os", "kernel", "gpus", "detail_json", "collected_at")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    CPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    CPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_JSON_FIELD_NUMBER: _ClassVar[int]
    COLLECTED_AT_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    cpu_model: str
    cpu_count: int
    memory_total_bytes: int
    os: str
    kernel: str
    gpus: _containers.RepeatedCompositeFieldContainer[Gpu]
    detail_json: str
    collected_at: float
    def __init__(self, hostname: _Optional[str] = ..., cpu_model: _Optional[str] = ..., cpu_count: _Optional[int] = ..., memory_total_bytes: _Optional[int] = ..., os: _Optional[str] = ..., kernel: _Optional[str] = ..., gpus: _Optional[_Iterable[_Union[Gpu, _Mapping]]] = ..., detail_json: _Optional[str] = ..., collected_at: _Optional[float] = ...) -> None: ...

class StartJobRequest(_message.Message):
    __slots__ = ("job_id", "kind", "spec_json", "start_at", "armed", "deadline_s")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    START_AT_FIELD_NUMBER: _ClassVar[int]
    ARMED_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_S_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    kind: JobKind
    spec_json: str
    start_at: float
    armed: bool
    deadline_s: float
    def __init__(self, job_id: _Optional[str] = ..., kind: _Optional[_Union[JobKind, str]] = ..., spec_json: _Optional[str] = ..., start_at: _Optional[float] = ..., armed: bool = ..., deadline_s: _Optional[float] = ...) -> None: ...

class StartAtRequest(_message.Message):
    __slots__ = ("job_id", "start_at")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    START_AT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    start_at: float
    def __init__(self, job_id: _Optional[str] = ..., start_at: _Optional[float] = ...) -> None: ...

class JobStatus(_message.Message):
    __slots__ = ("job_id", "kind", "state", "error", "created_at", "started_at", "finished_at", "last_seq", "record_count", "ready_at", "prepare_s")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    RECORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    READY_AT_FIELD_NUMBER: _ClassVar[int]
    PREPARE_S_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    kind: JobKind
    state: JobState
    error: str
    created_at: float
    started_at: float
    finished_at: float
    last_seq: int
    record_count: int
    ready_at: float
    prepare_s: float
    def __init__(self, job_id: _Optional[str] = ..., kind: _Optional[_Union[JobKind, str]] = ..., state: _Optional[_Union[JobState, str]] = ..., error: _Optional[str] = ..., created_at: _Optional[float] = ..., started_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., last_seq: _Optional[int] = ..., record_count: _Optional[int] = ..., ready_at: _Optional[float] = ..., prepare_s: _Optional[float] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id", "from_seq")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    from_seq: int
    def __init__(self, job_id: _Optional[str] = ..., from_seq: _Optional[int] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("seq", "job_id", "time", "state", "done", "total", "failed", "output_tps", "elapsed_s", "eta_s", "message")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TPS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_S_FIELD_NUMBER: _ClassVar[int]
    ETA_S_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    job_id: str
    time: float
    state: JobState
    done: int
    total: int
    failed: int
    output_tps: float
    elapsed_s: float
    eta_s: float
    message: str
    def __init__(self, seq: _Optional[int] = ..., job_id: _Optional[str] = ..., time: _Optional[float] = ..., state: _Optional[_Union[JobState, str]] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., failed: _Optional[int] = ..., output_tps: _Optional[float] = ..., elapsed_s: _Optional[float] = ..., eta_s: _Optional[float] = ..., message: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetJobResultRequest(_message.Message):
    __slots__ = ("job_id", "chunk_size", "columns")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    chunk_size: int
    columns: bool
    def __init__(self, job_id: _Optional[str] = ..., chunk_size: _Optional[int] = ..., columns: bool = ...) -> None: ...

class JobSummary(_message.Message):
    __slots__ = ("job_id", "state", "error", "evalscope_summary_json", "evalscope_percentiles_json", "evalscope_version", "record_count", "result_json")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EVALSCOPE_SUMMARY_JSON_FIELD_NUMBER: _ClassVar[int]
    EVALSCOPE_PERCENTILES_JSON_FIELD_NUMBER: _ClassVar[int]
    EVALSCOPE_VERSION_FIELD_NUMBER: _ClassVar[int]
    RECORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: JobState
    error: str
    evalscope_summary_json: str
    evalscope_percentiles_json: str
    evalscope_version: str
    record_count: int
    result_json: str
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., error: _Optional[str] = ..., evalscope_summary_json: _Optional[str] = ..., evalscope_percentiles_json: _Optional[str] = ..., evalscope_version: _Optional[str] = ..., record_count: _Optional[int] = ..., result_json: _Optional[str] = ...) -> None: ...

class RequestRecord(_message.Message):
    __slots__ = ("index", "start_time", "end_time", "success", "ttft_s", "latency_s", "input_tokens", "output_tokens", "tpot_s", "itl_s", "error", "point")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    TTFT_S_FIELD_NUMBER: _ClassVar[int]
    LATENCY_S_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TPOT_S_FIELD_NUMBER: _ClassVar[int]
    ITL_S_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    POINT_FIELD_NUMBER: _ClassVar[int]
    index: int
    start_time: float
    end_time: float
    success: bool
    ttft_s: float
    latency_s: float
    input_tokens: int
    output_tokens: int
    tpot_s: float
    itl_s: _containers.RepeatedScalarFieldContainer[float]
    error: str
    point: str
    def __init__(self, index: _Optional[int] = ..., start_time: _Optional[float] = ..., end_time: _Optional[float] = ..., success: bool = ..., ttft_s: _Optional[float] = ..., latency_s: _Optional[float] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., tpot_s: _Optional[float] = ..., itl_s: _Optional[_Iterable[float]] = ..., error: _Optional[str] = ..., point: _Optional[str] = ...) -> None: ...

class RecordBatch(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[RequestRecord]
    def __init__(self, records: _Optional[_Iterable[_Union[RequestRecord, _Mapping]]] = ...) -> None: ...

class RecordColumnsBatch(_message.Message):
    __slots__ = ("count", "index", "start_time", "end_time", "success", "ttft_s", "latency_s", "input_tokens", "output_tokens", "tpot_s", "itl_counts", "itl_s", "error", "point")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    TTFT_S_FIELD_NUMBER: _ClassVar[int]
    LATENCY_S_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TPOT_S_FIELD_NUMBER: _ClassVar[int]
    ITL_COUNTS_FIELD_NUMBER: _ClassVar[int]
    ITL_S_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    POINT_FIELD_NUMBER: _ClassVar[int]
    count: int
    index: bytes
    start_time: bytes
    end_time: bytes
    success: bytes
    ttft_s: bytes
    latency_s: bytes
    input_tokens: bytes
    output_tokens: bytes
    tpot_s: bytes
    itl_counts: bytes
    itl_s: bytes
    error: _containers.RepeatedScalarFieldContainer[str]
    point: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, count: _Optional[int] = ..., index: _Optional[bytes] = ..., start_time: _Optional[bytes] = ..., end_time: _Optional[bytes] = ..., success: _Optional[bytes] = ..., ttft_s: _Optional[bytes] = ..., latency_s: _Optional[bytes] = ..., input_tokens: _Optional[bytes] = ..., output_tokens: _Optional[bytes] = ..., tpot_s: _Optional[bytes] = ..., itl_counts: _Optional[bytes] = ..., itl_s: _Optional[bytes] = ..., error: _Optional[_Iterable[str]] = ..., point: _Optional[_Iterable[str]] = ...) -> None: ...

class ResultChunk(_message.Message):
    __slots__ = ("summary", "records", "columns")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    summary: JobSummary
    records: RecordBatch
    columns: RecordColumnsBatch
    def __init__(self, summary: _Optional[_Union[JobSummary, _Mapping]] = ..., records: _Optional[_Union[RecordBatch, _Mapping]] = ..., columns: _Optional[_Union[RecordColumnsBatch, _Mapping]] = ...) -> None: ...
