// Runs once, when the data volume is new: one user per service, each allowed only its own database.
const password = process.env.MONGODB_PASSWORD;
for (const service of ["identity", "charts", "documents", "forms", "notify", "audit"]) {
  db.getSiblingDB("admin").createUser({
    user: service, pwd: password, roles: [{role: "readWrite", db: `clinishare_${service}`}],
  });
}
