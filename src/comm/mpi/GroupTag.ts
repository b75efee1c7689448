/**
 * GroupTag: the tag under which the members of a group create its MPI communicator
 * (MPI_Comm_create_group), from the group's key within its job.
 */

/**
 * A string hash in 0..19996: the job is part of the key, so a creation left waiting by a failed
 * job never meets a later job's. MPI guarantees tags up to 32767; 20000 and above are the host
 * NCCL stand-in's (cuda/src/testing/host_nccl.h).
 * @category mapping
 */
export const tagOf = (key: string): number => {
  let h = 0
  for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) % 19997
  return h
}
