// Helpers shared by the State stream tests.
import { isChangeEvent, isControlEvent } from '@durable-streams/state'

/** mulberry32: a small seeded generator, so a failing run can be replayed. */
export function rng(seed) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  next.int = (n) => Math.floor(next() * n)
  next.pick = (arr) => arr[next.int(arr.length)]
  return next
}

/** Apply State Protocol messages to a MaterializedState the way an app does. */
export function applyAll(state, messages) {
  for (const m of messages) {
    if (isControlEvent(m)) {
      if (m.headers.control === 'reset') state.clear()
    } else if (isChangeEvent(m)) {
      state.apply(m)
    }
  }
  return state
}
