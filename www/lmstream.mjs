// lmstream.mjs: lmstream.js as an ES module (import LmStream, { follow, producer, stateMap } from './lmstream.mjs').
import './lmstream.js'
const LmStream = globalThis.LmStream
export const follow = LmStream.follow
export const producer = LmStream.producer
export const stateMap = LmStream.stateMap
export default LmStream
