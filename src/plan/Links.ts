/**
 * Links: the time of a collective over a group placed on the cluster (Placement), from its
 * bytes and the bandwidth its placement gives it (Cluster, Calibration).
 */
import * as Cluster from "./Cluster.js"
import { calibration as c } from "./Calibration.js"
import type * as Placement from "./Placement.js"

/**
 * Ring all-gather or reduce-scatter of a buffer of `bytes` (the whole, gathered size) over a
 * group: each member moves (n-1)/n of it, at NVLink speed inside a node. Across nodes NCCL runs
 * one ring per NIC, so a group with q members on each node crosses each node boundary at q NICs'
 * rate (up to NVLink's).
 * @category mapping
 */
export const ring = (cluster: Cluster.Cluster, group: Placement.Spread, bytes: number): number => {
  if (group.size <= 1 || bytes <= 0) return 0
  return c.collectiveLatencySeconds + (bytes * (group.size - 1)) / group.size / streaming(cluster, group, group.peersInNode + 1)
}

/** Bytes/s of a stream over a group's links: NVLink inside a node, else `nics` NICs' worth of the network (at most NVLink). */
const streaming = (cluster: Cluster.Cluster, group: Placement.Spread, nics: number): number => {
  const nvlink = Cluster.nvlinkBytesPerSecond(cluster) * c.nvlinkRingFraction
  return group.nodes <= 1 ? nvlink : Math.min(nvlink, Cluster.networkBytesPerSecond(cluster) * c.networkRingFraction * nics)
}

/**
 * All-to-all where each member sends `bytes` in equal parts to every member (itself included):
 * the parts for peers on its node go over NVLink, the rest over the network, at the same time.
 * @category mapping
 */
export const allToAll = (cluster: Cluster.Cluster, group: Placement.Spread, bytes: number): number => {
  if (group.size <= 1 || bytes <= 0) return 0
  const inNode = (bytes * group.peersInNode) / group.size
  const offNode = (bytes * (group.size - 1 - group.peersInNode)) / group.size
  const nvlink = inNode / (Cluster.nvlinkBytesPerSecond(cluster) * c.nvlinkAllToAllFraction)
  const network = offNode / (Cluster.networkBytesPerSecond(cluster) * c.networkAllToAllFraction)
  return c.collectiveLatencySeconds + Math.max(nvlink, network)
}

/**
 * One point-to-point transfer of `bytes` between neighbours of a group.
 * @category mapping
 */
export const sendReceive = (cluster: Cluster.Cluster, group: Placement.Spread, bytes: number): number => {
  if (group.size <= 1 || bytes <= 0) return 0
  return c.collectiveLatencySeconds + bytes / streaming(cluster, group, 1)
}
