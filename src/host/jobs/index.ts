export {
  GuestJobs,
  type GuestJobsOptions,
  type JobChunk,
  type JobInfo,
  type JobRunner,
  type JobState,
} from './guest-jobs.js';
export {
  checkPort,
  type ForwardInfo,
  type GuestDialer,
  MAX_FORWARDS,
  PortForwards,
} from './port-forwards.js';
