"""A tree of 20 runs over two worker processes, on both stores: a worker killed mid-tree
does not duplicate children when its runs resume elsewhere, and a tree cancel from a
client process stops all 20, leaves first, exactly once."""

from __future__ import annotations

import json

import pytest

import tree_app
from runplane import Runplane, RunStatus

from support import eventually
from support.processes import Process, Processes, run_python

LEAVES = [6, 5, 5]
SIZE = 1 + len(LEAVES) + sum(LEAVES)
# 12 runs each: 20 do not fit in one worker, so the tree spreads over both
WORKER = ("--concurrency", "12", "--lease-ttl", "2", "--heartbeat-interval", "0.5",
          "--poll-interval", "0.05", "--reap-interval", "0.3", "--grace", "1")

CANCEL_TREE = """
import asyncio, json, sys
from runplane import Runplane

async def main(url, run_id):
    async with Runplane(url, worker=False) as rp:
        result = await rp.runs.cancel(run_id, scope="tree", wait=True, reason="stop all")
        print(json.dumps({"outcome": result.outcome, "counts": result.counts}))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def _worker(processes: Processes, database_url: str, name: str) -> Process:
    return processes.runplane(name, "worker", "tree_app:app", "--database", database_url,
                              *WORKER)


@pytest.fixture
def workers(processes: Processes, database_url: str) -> list[Process]:
    return [_worker(processes, database_url, f"worker-{k}") for k in range(2)]


def _nodes(node):
    yield node
    for child in node.children:
        yield from _nodes(child)


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_tree_over_two_workers_survives_a_kill_and_stops_as_one(
    database_url: str, workers: list[Process], processes: Processes
):
    client = Runplane(database_url, worker=False)
    for name, fn in tree_app.app.workflows.items():  # a client creates runs it knows
        client.workflow(name)(fn)
    async with client:
        root = await client.runs.create(None, "root", {"leaves": LEAVES})

        async def tree_running(owners: set[int] | None = None):
            nodes = list(_nodes(await client.runs.tree(root.run_id)))
            if len(nodes) != SIZE or any(n.status is not RunStatus.RUNNING for n in nodes):
                return None
            pids = {int(n.run.lease_owner.split(":")[-2]) for n in nodes}
            return nodes if owners is None or pids <= owners else None

        nodes = await eventually(tree_running, timeout=30)
        pids = {int(n.run.lease_owner.split(":")[-2]) for n in nodes}
        assert pids == {w.pid for w in workers}

        # kill the worker holding the root: its runs resume on the other one and on a
        # replacement
        victim = next(w for w in workers if str(w.pid) in nodes[0].run.lease_owner)
        victim.kill()
        workers.append(_worker(processes, database_url, "worker-2"))
        alive = {w.pid for w in workers if w is not victim}
        nodes = await eventually(lambda: tree_running(alive), timeout=30)
        assert len({n.run_id for n in nodes}) == SIZE  # no child started twice
        assert len(await client.runs.list(limit=100)) == SIZE
        resumed = [n for n in nodes if n.run.attempt > 1]
        assert resumed, "the killed worker's runs did not move"
        for node in nodes:
            # a child can be claimed before its parent's spawn step is stored (two writes)
            async def spawned_are_children(node=node) -> bool:
                steps = await client.runs.steps(node.run_id)
                spawned = [s.result["run_id"] for s in steps if s.name.startswith("spawn:")]
                return spawned == [c.run_id for c in node.children]

            await eventually(spawned_are_children, timeout=10)

        # a tree cancel from another process, named by a leaf
        leaf = next(n for n in nodes if n.assistant_id == "leaf")
        answer = json.loads(run_python(CANCEL_TREE, database_url, leaf.run_id))
        assert answer == {"outcome": "cancelled", "counts": {
            "cancelled": SIZE, "already_interrupted": 0, "already_finished": 0}}
        nodes = list(_nodes(await client.runs.tree(root.run_id)))
        assert all(n.status is RunStatus.INTERRUPTED for n in nodes)
        for node in nodes:  # leaves first: each child's cancel precedes its parent's
            for child in node.children:
                assert child.run.cancel_requested_at < node.run.cancel_requested_at
        events = {n.run_id: await client.runs.events(n.run_id) for n in nodes}
        assert all([e.event for e in log].count("run:cancel") == 1 for log in events.values())

        again = json.loads(run_python(CANCEL_TREE, database_url, root.run_id))
        assert again == {"outcome": "already_interrupted", "counts": {
            "cancelled": 0, "already_interrupted": SIZE, "already_finished": 0}}
        for node in nodes:  # nothing changed
            assert await client.runs.events(node.run_id) == events[node.run_id]
