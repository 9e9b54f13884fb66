// Drives snapvault with the official Elasticsearch JavaScript client (8.x),
// the way an operator's Node.js script would: basic credentials, then a
// least-privilege API key for a backup job. Exits non-zero on the first
// surprise. Usage: node js_client.js http://127.0.0.1:PORT PASSWORD_OF_ELASTIC
// (NODE_PATH names the node_modules holding @elastic/elasticsearch).
'use strict'
const assert = require('node:assert/strict')
const { Client, errors } = require('@elastic/elasticsearch')

const [url, password] = process.argv.slice(2)

async function refused (promise, status) {
  try {
    await promise
  } catch (e) {
    assert.ok(e instanceof errors.ResponseError, String(e))
    assert.equal(e.meta.statusCode, status, JSON.stringify(e.meta.body))
    assert.equal(e.meta.body.error.type, 'security_exception')
    return e.meta.body
  }
  assert.fail(`expected a ${status}`)
}

async function main () {
  const wrong = new Client({ node: url, auth: { username: 'elastic', password: password + '-wrong' } })
  await refused(wrong.snapshot.getRepository(), 401)

  const es = new Client({ node: url, auth: { username: 'elastic', password }, requestTimeout: 120000 })
  assert.equal((await es.security.authenticate()).username, 'elastic')
  // snapvault reports Elasticsearch 9.x (Kibana 9 needs it); the 8.x
  // client talks to it with compatible-with=8 media types.
  assert.ok(/^9\.\d+\.\d+$/.test((await es.info()).version.number))

  await es.indices.create({ index: 'js-books', settings: { number_of_shards: 2 } })
  const operations = []
  for (let i = 0; i < 120; i++) operations.push({ index: { _index: 'js-books', _id: String(i) } }, { n: i })
  const bulk = await es.bulk({ operations })
  assert.equal(bulk.errors, false)
  await es.snapshot.createRepository({ name: 'js-repo', repository: { type: 'fs', settings: { location: 'js-repo' } } })

  const key = await es.security.createApiKey({
    name: 'js-backup',
    expiration: '1d',
    role_descriptors: { backup: { cluster: ['create_snapshot', 'monitor_snapshot'] } }
  })
  const job = new Client({ node: url, auth: { apiKey: key.encoded }, requestTimeout: 120000 })
  assert.equal((await job.security.authenticate()).api_key.name, 'js-backup')
  const taken = await job.snapshot.create({ repository: 'js-repo', snapshot: 'by-key', indices: 'js-books', wait_for_completion: true })
  assert.equal(taken.snapshot.state, 'SUCCESS')
  const listed = await job.snapshot.get({ repository: 'js-repo', snapshot: '_all' })
  assert.deepEqual(listed.snapshots.map(s => s.snapshot), ['by-key'])
  const body = await refused(job.snapshot.delete({ repository: 'js-repo', snapshot: 'by-key' }), 403)
  assert.match(body.error.reason, /cluster:admin\/snapshot\/delete/)
  await refused(job.snapshot.deleteRepository({ name: 'js-repo' }), 403)

  const invalidated = await es.security.invalidateApiKey({ ids: [key.id] })
  assert.deepEqual(invalidated.invalidated_api_keys, [key.id])
  await refused(job.snapshot.get({ repository: 'js-repo', snapshot: '_all' }), 401)

  await es.indices.delete({ index: 'js-books' })
  const restored = await es.snapshot.restore({ repository: 'js-repo', snapshot: 'by-key', wait_for_completion: true })
  assert.deepEqual(restored.snapshot.indices, ['js-books'])
  assert.equal((await es.count({ index: 'js-books' })).count, 120)
  await es.snapshot.delete({ repository: 'js-repo', snapshot: 'by-key' })
  await es.snapshot.deleteRepository({ name: 'js-repo' })
  console.log('js client: all checks passed')
}

main().catch(e => {
  console.error(e && e.meta ? JSON.stringify(e.meta.body) : e)
  process.exit(1)
})
