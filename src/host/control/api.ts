/**
 * The ControllerApi moved up into the contract (src/host/api/). This re-export keeps the
 * modules that still import it from here compiling; new code imports from '../api/index.js'.
 */
export type {
  ControllerApi,
  ExecOutcome,
  ExecRequest,
  ExecStreams,
  Origin,
  StatusInfo,
  TaskLimits,
  TaskStartRequest,
  TaskSummary,
} from '../api/controller.js';
