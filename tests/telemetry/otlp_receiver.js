// A test-only OTLP/HTTP receiver. It decodes what a distcache node exports
// with the official OpenTelemetry protobuf definitions (opentelemetry-proto,
// as generated into @opentelemetry/otlp-transformer's static protobufjs
// module) and keeps a summary that the C++ test reads from GET /summary.
//
// Usage: node otlp_receiver.js PORT_FILE
// Listens on 127.0.0.1 (a free port), writes the port to PORT_FILE.
'use strict';
const http = require('http');
const fs = require('fs');
const root = require('@opentelemetry/otlp-transformer/build/src/generated/root');

const proto = root.opentelemetry.proto;
const TraceRequest = proto.collector.trace.v1.ExportTraceServiceRequest;
const TraceResponse = proto.collector.trace.v1.ExportTraceServiceResponse;
const MetricsRequest = proto.collector.metrics.v1.ExportMetricsServiceRequest;
const MetricsResponse = proto.collector.metrics.v1.ExportMetricsServiceResponse;

const summary = {spans: [], metrics: [], errors: [], requests: {traces: 0, metrics: 0}, content_types: []};

const hex = (b) => Buffer.from(b || []).toString('hex');
function anyValue(v) {
  if (!v) return null;
  if (v.stringValue !== undefined && v.stringValue !== null && v.stringValue !== '') return v.stringValue;
  if (v.intValue !== undefined && v.intValue !== null) return Number(v.intValue);
  if (v.doubleValue !== undefined && v.doubleValue !== null) return v.doubleValue;
  if (v.boolValue !== undefined && v.boolValue !== null) return v.boolValue;
  return v.stringValue === '' ? '' : null;
}
function attributes(list) {
  const out = {};
  for (const kv of list || []) out[kv.key] = anyValue(kv.value);
  return out;
}
const num = (x) => (x === undefined || x === null ? 0 : Number(x));

function onTraces(body) {
  const req = TraceRequest.decode(body);
  const err = TraceRequest.verify(req);
  if (err) throw new Error('ExportTraceServiceRequest does not verify: ' + err);
  for (const rs of req.resourceSpans) {
    const resource = attributes(rs.resource && rs.resource.attributes);
    for (const ss of rs.scopeSpans) {
      for (const s of ss.spans) {
        summary.spans.push({
          trace_id: hex(s.traceId), span_id: hex(s.spanId), parent_span_id: hex(s.parentSpanId),
          name: s.name, kind: s.kind, scope: ss.scope ? ss.scope.name : '',
          start: num(s.startTimeUnixNano), end: num(s.endTimeUnixNano),
          status_code: s.status ? s.status.code : 0,
          attributes: attributes(s.attributes), resource,
        });
      }
    }
  }
  return TraceResponse.encode(TraceResponse.create({})).finish();
}

function onMetrics(body) {
  const req = MetricsRequest.decode(body);
  const err = MetricsRequest.verify(req);
  if (err) throw new Error('ExportMetricsServiceRequest does not verify: ' + err);
  for (const rm of req.resourceMetrics) {
    const resource = attributes(rm.resource && rm.resource.attributes);
    for (const sm of rm.scopeMetrics) {
      for (const m of sm.metrics) {
        const entry = {name: m.name, unit: m.unit, resource, points: []};
        if (m.histogram) {
          entry.type = 'histogram';
          entry.temporality = m.histogram.aggregationTemporality;
          for (const p of m.histogram.dataPoints) {
            entry.points.push({attributes: attributes(p.attributes), count: num(p.count), sum: p.sum,
                               bucket_counts: p.bucketCounts.map(num), bounds: p.explicitBounds});
          }
        } else if (m.sum) {
          entry.type = 'sum';
          entry.monotonic = m.sum.isMonotonic;
          entry.temporality = m.sum.aggregationTemporality;
          for (const p of m.sum.dataPoints) entry.points.push({attributes: attributes(p.attributes), value: num(p.asInt)});
        } else if (m.gauge) {
          entry.type = 'gauge';
          for (const p of m.gauge.dataPoints) entry.points.push({attributes: attributes(p.attributes), value: num(p.asInt)});
        } else {
          entry.type = 'other';
        }
        summary.metrics.push(entry);
      }
    }
  }
  return MetricsResponse.encode(MetricsResponse.create({})).finish();
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    try {
      if (req.method === 'GET' && req.url === '/summary') {
        const text = JSON.stringify(summary);
        res.writeHead(200, {'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text)});
        return res.end(text);
      }
      if (req.method === 'POST' && (req.url === '/v1/traces' || req.url === '/v1/metrics')) {
        summary.content_types.push(req.headers['content-type'] || '');
        const traces = req.url === '/v1/traces';
        summary.requests[traces ? 'traces' : 'metrics'] += 1;
        const answer = traces ? onTraces(body) : onMetrics(body);
        res.writeHead(200, {'Content-Type': 'application/x-protobuf'});
        return res.end(Buffer.from(answer));
      }
      res.writeHead(404);
      res.end();
    } catch (e) {
      summary.errors.push(String(e && e.message ? e.message : e));
      res.writeHead(400, {'Content-Type': 'text/plain'});
      res.end(String(e));
    }
  });
});
server.listen(0, '127.0.0.1', () => {
  fs.writeFileSync(process.argv[2], String(server.address().port));
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
