import asyncio
import time

from fleetbench.agent.saturation import CpuSampler, SaturationReport, watch_loop_lag


def test_verdict_from_samples():
    assert not SaturationReport([0.3, 0.5, 0.4], [0.001]).saturated
    assert SaturationReport([0.95, 0.97, 0.5, 0.4], [0.002]).saturated
    assert not SaturationReport([0.95, 0.3, 0.2, 0.1, 0.2, 0.1, 0.1, 0.2, 0.1], [0.0]).saturated  # one blip
    assert SaturationReport([0.2], [0.2, 0.3, 0.25]).saturated  # loop 200+ ms late, persistently
    assert not SaturationReport([0.2], [0.2] + [0.001] * 40).saturated  # one spike
    d = SaturationReport([0.95, 0.97], [0.0]).to_dict()
    assert d["saturated"] and d["cpu_max"] == 0.97 and d["saturated_windows"] == 2


def test_cpu_sampler_sees_a_busy_loop():
    report = SaturationReport()
    report.load_started.set()
    sampler = CpuSampler(report, interval_s=0.2)
    sampler.start()
    cpu0, start = time.thread_time(), time.monotonic()
    end = start + 1.0
    while time.monotonic() < end:
        pass
    share = (time.thread_time() - cpu0) / (time.monotonic() - start)  # what the loop really got of a core
    sampler.stop()
    # on a quiet machine the loop gets a whole core (> 0.5); on a loaded one less, and the sampler must see
    # what it got, not a fixed figure
    assert report.cpu_samples and max(report.cpu_samples) > 0.5 * share > 0


def test_loop_lag_measures_a_blocked_loop():
    report = SaturationReport()
    report.load_started.set()

    async def main():
        task = asyncio.create_task(watch_loop_lag(report, interval_s=0.02))
        await asyncio.sleep(0.05)
        time.sleep(0.2)  # block the loop
        await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(main())
    assert report.lag_max_s > 0.1


def test_loop_blocked_while_an_armed_job_waits_for_its_start_is_not_saturation():
    """Found on an H200: a 4-stream armed job built its prompts in the loop while waiting for the start
    instant and read 'loop lag p95 306 ms, saturated' (the step INVALID) on an idle 16-core host."""
    report = SaturationReport()

    async def main():
        task = asyncio.create_task(watch_loop_lag(report, interval_s=0.02))
        for _ in range(5):  # set-up before the start instant: the loop is blocked, again and again
            await asyncio.sleep(0.01)
            time.sleep(0.1)
        report.load_started.set()
        for _ in range(10):  # the load: a free loop
            await asyncio.sleep(0.02)
        task.cancel()

    asyncio.run(main())
    assert report.lag_samples_s and report.lag_max_s < 0.05
    assert not report.saturated


def test_cpu_sampler_counts_the_loop_thread_not_other_threads():
    # seen on a 16-core H100 server: tokenizer/math thread pools took the job process to 290 % of a
    # core at one stream while evalscope's loop was idle; only the loop's thread can saturate it
    import threading

    report = SaturationReport()
    report.load_started.set()
    sampler = CpuSampler(report, interval_s=0.2)  # this (sleeping) thread runs "the loop"
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            pass

    worker = threading.Thread(target=busy)
    worker.start()
    sampler.start()
    time.sleep(1.0)
    sampler.stop()
    stop.set()
    worker.join()
    assert report.cpu_samples and max(report.cpu_samples) < 0.3


def test_cpu_before_the_first_request_is_set_up_not_load():
    # found on the H100: generating a 16k-token prompt before the first request flagged a
    # one-request long-context job as client-bound
    report = SaturationReport()
    sampler = CpuSampler(report, interval_s=0.1)
    sampler.start()
    end = time.monotonic() + 0.6
    while time.monotonic() < end:  # busy set-up: not sampled
        pass
    report.load_started.set()
    time.sleep(0.5)  # the load: an idle loop
    sampler.stop()
    assert report.cpu_samples and max(report.cpu_samples) < 0.5 and not report.saturated
