export {
  type BudgetFigures,
  budgetFiguresSchema,
  EVENT_TYPES,
  type EventOf,
  type EventType,
  LIMIT_NAMES,
  type LimitName,
  limitNameSchema,
  type StoredEvent,
  TASK_OUTCOMES,
  type TaskOutcome,
  type TimelineEvent,
  taskOutcomeSchema,
  timelineEventSchema,
  type Usage,
  usageSchema,
} from './events.js';
export { capUtf8 } from './excerpt.js';
export { escapeControl, formatEvent, formatTask } from './format.js';
export { newTaskId, shortId, TASK_ID_PATTERN } from './ids.js';
export type { EventListener, EventQuery, TaskRecord, TaskStatus } from './records.js';
export { SCHEMA_VERSION } from './schema.js';
export { Timeline, type TimelineOptions } from './timeline.js';
