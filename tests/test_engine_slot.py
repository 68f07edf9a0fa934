"""Latest-frame slot semantics: drop-oldest with counts (live), and waiting readers (files)."""
import threading
import time

from streamseg.engine.slot import LatestFrameSlot


def test_drop_mode_keeps_newest_and_counts_drops():
    slot = LatestFrameSlot(wait=False)
    for i in range(5):
        assert slot.put(i) is True  # never blocks, always accepted
    assert slot.dropped == 4
    assert slot.take() == 4
    assert slot.take() is None
    slot.put(5)
    assert slot.take() == 5
    assert slot.dropped == 4
    assert slot.put_count == 6


def test_drop_mode_producer_never_waits_for_a_slow_consumer():
    slot = LatestFrameSlot(wait=False)
    taken = []

    def slow_consumer():
        for _ in range(3):
            item = slot.get(timeout=1.0)
            if item is not None:
                taken.append(item)
            time.sleep(0.05)

    consumer = threading.Thread(target=slow_consumer)
    consumer.start()
    for i in range(200):  # a fast reader: 200 puts happen while the consumer takes at most 3
        slot.put(i)
    slot.close()  # the consumer's next get returns at once instead of timing out
    consumer.join(5.0)
    assert not consumer.is_alive()
    assert slot.put_count == 200
    # every frame either was taken, is still in the slot, or was counted as dropped
    assert len(taken) + slot.dropped + (1 if slot.has_item() else 0) == 200
    assert slot.dropped >= 195


def test_wait_mode_loses_nothing_and_keeps_order():
    slot = LatestFrameSlot(wait=True)
    n = 300
    received = []

    def reader():
        for i in range(n):
            assert slot.put(i)
        slot.close()

    t = threading.Thread(target=reader)
    t.start()
    while True:
        item = slot.get(timeout=2.0)
        if item is None:
            if slot.finished:
                break
            continue
        received.append(item)
    t.join(5.0)
    assert not t.is_alive()
    assert received == list(range(n))
    assert slot.dropped == 0


def test_wait_mode_put_blocks_until_taken():
    slot = LatestFrameSlot(wait=True)
    slot.put("a")
    done = threading.Event()

    def second_put():
        slot.put("b")
        done.set()

    t = threading.Thread(target=second_put)
    t.start()
    assert not done.wait(0.2)  # blocked: the slot is full
    assert slot.take() == "a"
    assert done.wait(2.0)
    assert slot.take() == "b"
    t.join(1.0)


def test_close_releases_a_waiting_reader_and_refuses_new_frames():
    slot = LatestFrameSlot(wait=True)
    slot.put(1)
    result = []
    t = threading.Thread(target=lambda: result.append(slot.put(2)))
    t.start()
    time.sleep(0.05)
    slot.close()
    t.join(1.0)
    assert not t.is_alive()
    assert result == [False]
    assert not slot.finished  # frame 1 can still be taken after close
    assert slot.take() == 1
    assert slot.finished


def test_shared_condition_wakes_a_consumer_of_several_slots():
    cond = threading.Condition()
    slots = [LatestFrameSlot(wait=False, cond=cond) for _ in range(3)]
    threading.Timer(0.05, lambda: slots[2].put("x")).start()
    with cond:
        woke = cond.wait_for(lambda: any(s.has_item() for s in slots), timeout=2.0)
    assert woke
    assert [s.take() for s in slots] == [None, None, "x"]
