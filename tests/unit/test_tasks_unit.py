"""Tasks the proxy starts stay referenced until they finish: the event loop keeps only weak
references, so a task waiting on a future nobody else holds could be collected mid-way.
"""

import asyncio
import gc
import weakref

from devstral_proxy import tasks


def test_a_background_task_survives_a_collection_until_it_is_done():
    async def main():
        gate = asyncio.get_running_loop().create_future()
        done = []

        async def work(fut):
            await fut
            done.append(True)

        task = tasks.background(work(gate))
        ref = weakref.ref(task)
        del task
        await asyncio.sleep(0)
        gc.collect()
        assert ref() is not None and ref() in tasks._running
        gate.set_result(None)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert done == [True]
        assert ref() is None or ref() not in tasks._running

    asyncio.run(main())


def test_the_reload_and_token_counting_tasks_are_background_tasks():
    from pathlib import Path

    import devstral_proxy

    for name in ("cli", "ratelimit", "relay"):  # the source files (a compiled module has no source to inspect)
        assert "create_task(" not in (Path(devstral_proxy.__file__).parent / f"{name}.py").read_text(), name
