// The baseline for `npm run bench`: a bare Fastify HTTPS server that answers
// every POST with a fixed AdmissionReview. What podgate costs is measured
// against this, on the same machine, in the same run.
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';

const [certPath = '', keyPath = ''] = process.argv.slice(2);
const app = Fastify({ https: { cert: readFileSync(certPath), key: readFileSync(keyPath) }, bodyLimit: 8 * 1024 * 1024 });
app.removeAllContentTypeParsers();
app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => {
  done(null, JSON.parse(String(body)));
});
const answer = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'fixed', allowed: true } };
app.post('/*', () => answer);
await app.listen({ port: 0, host: '127.0.0.1' });
const address = app.server.address();
process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : 0}\n`);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
