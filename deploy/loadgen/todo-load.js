// Steady mixed load through the gateway for the compose demo (grafana/k6).
// Writes hit command-service stable/canary by the HAProxy weights, reads hit
// query-service. RATE (requests per second) and DURATION come from the env.
import http from 'k6/http';
import { check } from 'k6';

const base = __ENV.GATEWAY_URL || 'http://haproxy:8080';
export const options = {
  scenarios: {
    mixed: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE || 20),
      timeUnit: '1s',
      duration: __ENV.DURATION || '24h',
      preAllocatedVUs: 10,
      maxVUs: 50,
    },
  },
  discardResponseBodies: false,
};

const priorities = ['low', 'medium', 'high', 'urgent'];

export default function () {
  const user = `load-${__VU % 20}`;
  const headers = { 'content-type': 'application/json', 'x-user-id': user };
  if (Math.random() < 0.5) {
    const body = JSON.stringify({
      title: `load ${__ITER}`,
      priority: priorities[__ITER % priorities.length],
      tags: ['load'],
    });
    const res = http.post(`${base}/v1/todos`, body, { headers, tags: { name: 'POST /v1/todos' } });
    check(res, { 'created': (r) => r.status === 201 });
    if (res.status === 201 && Math.random() < 0.3) {
      // Location: /v1/todos/{id}
      http.post(`${base}${res.headers['Location']}/complete`, null, { headers, tags: { name: 'POST /v1/todos/{id}/complete' } });
    }
  } else {
    const res = http.get(`${base}/v1/todos?limit=20`, { headers, tags: { name: 'GET /v1/todos' } });
    check(res, { 'listed': (r) => r.status === 200 });
  }
}
