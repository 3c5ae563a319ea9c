-- The W3C trace context (`traceparent`) of whatever enqueued the job: an API request or the
-- stage that completed before it. The worker continues that trace when it runs the job, so one
-- trace shows a video from its POST to its export. NULL when tracing is off.
ALTER TABLE jobs ADD COLUMN traceparent text;
