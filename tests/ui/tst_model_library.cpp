// The model library against a web server on 127.0.0.1 started by the test, serving a checkpoint in
// the authors' exact format ($AMOD_REFERENCE_DIR/ffhq-style.pth): a complete download, one that the
// server cuts off halfway and that Download then continues with a Range request, the SHA-256, the
// background import with the library entry's alignment, and the imported model opening in the
// editor. Also: offline, and Model → Import Checkpoint, which asks how the photos were aligned when
// the file is not one of the released models.
#include "ui_testutil.h"

#include <QApplication>
#include <QCryptographicHash>
#include <QTimer>
#include <QDialogButtonBox>
#include <QDir>
#include <QFile>
#include <QPushButton>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTableWidget>
#include <QTcpServer>
#include <QTcpSocket>
#include <QTest>

#include <cstdlib>
#include <filesystem>

#include "core/io/model_file.h"
#include "core/io/reference_import.h"
#include "core/model/automodulator.h"
#include "ui/downloader.h"
#include "ui/main_window.h"
#include "ui/model_library.h"
#include "ui/studio.h"

using namespace automod;
using namespace automod::ui;

namespace {

/// A minimal HTTP/1.1 server: GET /<file> answers with `body` (206 and the rest for a Range
/// request); with cut_first set, the first full answer stops after half the bytes and closes.
class LoopbackServer : public QObject {
 public:
  QByteArray body;
  QString file;
  bool cut_first = false;
  QStringList ranges;  // the Range header of every request ("" when none)
  int requests = 0;

  bool listen() {
    connect(&server_, &QTcpServer::newConnection, this, [this] {
      while (auto* socket = server_.nextPendingConnection()) {
        connect(socket, &QTcpSocket::readyRead, this, [this, socket] { onRead(socket); });
        connect(socket, &QTcpSocket::disconnected, socket, &QObject::deleteLater);
      }
    });
    return server_.listen(QHostAddress::LocalHost);
  }
  QUrl base() const { return QUrl(QString("http://127.0.0.1:%1/").arg(server_.serverPort())); }

 private:
  void onRead(QTcpSocket* socket) {
    auto& buffer = buffers_[socket];
    buffer += socket->readAll();
    if (!buffer.contains("\r\n\r\n")) return;
    const QList<QByteArray> lines = buffer.left(buffer.indexOf("\r\n\r\n")).split('\n');
    buffers_.remove(socket);
    ++requests;
    const QByteArray path = lines.value(0).split(' ').value(1);
    QByteArray range;
    for (const auto& l : lines)
      if (l.toLower().startsWith("range:")) range = l.mid(6).trimmed();
    ranges << QString::fromLatin1(range);
    if (path != "/" + file.toLatin1()) {
      socket->write("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      socket->disconnectFromHost();
      return;
    }
    qint64 from = 0;
    if (range.startsWith("bytes=")) from = range.mid(6, range.indexOf('-') - 6).toLongLong();
    QByteArray head;
    if (from > 0) {
      head = "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes " + QByteArray::number(from) + "-" +
             QByteArray::number(body.size() - 1) + "/" + QByteArray::number(body.size()) + "\r\n";
    } else {
      head = "HTTP/1.1 200 OK\r\n";
    }
    head += "Content-Type: application/octet-stream\r\nContent-Length: " + QByteArray::number(body.size() - from) +
            "\r\nConnection: close\r\n\r\n";
    socket->write(head);
    if (cut_first && from == 0) {
      cut_first = false;
      socket->write(body.left(body.size() / 2));
      // All of the half reaches the kernel (a larger fixture takes several writes) before the drop.
      while (socket->bytesToWrite() > 0 && socket->waitForBytesWritten(5000)) {
      }
      socket->abort();  // the connection drops halfway
      return;
    }
    socket->write(body.mid(from));
    socket->disconnectFromHost();
  }

  QTcpServer server_;
  QHash<QTcpSocket*, QByteArray> buffers_;
};

}  // namespace

class TestModelLibrary : public QObject {
  Q_OBJECT

  QByteArray checkpoint_;
  QString checkpoint_path_;

  static void clearLibrary() {
    QDir(libraryModelsFolder()).removeRecursively();
    QDir(libraryDownloadsFolder()).removeRecursively();
  }
  static QString sha256(const QByteArray& bytes) {
    return QString::fromLatin1(QCryptographicHash::hash(bytes, QCryptographicHash::Sha256).toHex());
  }

 private Q_SLOTS:
  void initTestCase() {
    QStandardPaths::setTestModeEnabled(true);  // the library lives in a test data folder
    QCoreApplication::setOrganizationName("automod-tests");
    checkpoint_path_ = QString::fromStdString((test::referenceDir() / "ffhq-style.pth").string());
    QFile f(checkpoint_path_);
    if (!f.open(QIODevice::ReadOnly))
      QSKIP(qPrintable("no reference checkpoint at " + checkpoint_path_ + " (set AMOD_REFERENCE_DIR)"));
    checkpoint_ = f.readAll();
  }

  void init() { clearLibrary(); }
  void cleanupTestCase() { clearLibrary(); }

  void listsTheFiveReleasedModels() {
    // Beside them: a model the Train tab trained (its run folder in the data folder).
    const QString run = QDir(QStandardPaths::writableLocation(QStandardPaths::AppDataLocation))
                            .filePath("runs/tiny-photos-20261202-0830");
    QVERIFY(QDir().mkpath(run));
    saveModel(QDir(run).filePath("latest.amod").toStdString(), *test::expressiveTinyModel());
    ModelLibraryDialog d;
    QCOMPARE(d.table()->rowCount(), 6);
    QCOMPARE(d.table()->item(5, 0)->text(), QString("tiny-photos-20261202-0830"));
    QCOMPARE(d.table()->item(5, 6)->text(), QString("ready"));
    // A local model's details come from its file.
    QCOMPARE(d.table()->item(5, 1)->text(), QString("64 px"));
    QVERIFY(d.table()->item(5, 2)->text() != QString("–"));
    QVERIFY(d.select("tiny-photos-20261202-0830"));
    QVERIFY(d.openButton()->isEnabled() && !d.downloadButton()->isEnabled());
    QSignalSpy chosen(&d, &ModelLibraryDialog::modelChosen);
    d.openSelected();
    QCOMPARE(chosen.count(), 1);
    QCOMPARE(chosen.at(0).at(0).toString(), QDir(run).filePath("latest.amod"));
    QDir(run).removeRecursively();
    const auto entries = ModelLibraryDialog::releasedEntries();
    QCOMPARE(entries[1].name, QString("ffhq256"));
    QCOMPARE(entries[1].url.toString(), QString("https://zenodo.org/record/4298894/files/34740000_state.pth"));
    QCOMPARE(d.table()->item(2, 2)->text(), QString("small"));  // celebahq256: the small decoder
    QCOMPARE(d.table()->item(2, 3)->text(), QString("CelebA-HQ aligned"));
    QCOMPARE(d.table()->item(4, 3)->text(), QString("centre crop"));  // LSUN bedrooms
    QVERIFY(d.select("ffhq256"));
    QVERIFY(d.downloadButton()->isEnabled());
    QVERIFY(!d.openButton()->isEnabled());  // nothing to open yet
    QCOMPARE(d.table()->item(1, 6)->text(), QString("not downloaded"));
  }

  void anInterruptedDownloadContinuesThenImportsAndOpens() {
    LoopbackServer server;
    server.body = checkpoint_;
    server.file = "34740000_state.pth";  // ffhq256's file name
    server.cut_first = true;
    QVERIFY(server.listen());
    StudioController c;
    c.setModel(test::expressiveTinyModel(), "tiny");
    MainWindow w(&c);
    auto* d = w.openModelLibrary(server.base());
    QSignalSpy downloads(d, &ModelLibraryDialog::downloadFinished);
    QSignalSpy imports(d, &ModelLibraryDialog::importFinished);
    QVERIFY(d->select("ffhq256"));
    d->downloadButton()->click();
    QTRY_COMPARE_WITH_TIMEOUT(downloads.count(), 1, 30000);
    QCOMPARE(downloads.at(0).at(0).toBool(), false);  // cut off
    QVERIFY2(d->statusText().contains("kept"), qPrintable(d->statusText()));
    const QString part = FileDownload::partPath(QDir(libraryDownloadsFolder()).filePath(server.file));
    QCOMPARE(QFileInfo(part).size(), qint64(checkpoint_.size() / 2));
    QVERIFY(d->table()->item(1, 6)->text().startsWith("partly downloaded"));

    d->downloadButton()->click();  // continues
    QTRY_COMPARE_WITH_TIMEOUT(downloads.count(), 2, 30000);
    QCOMPARE(downloads.at(1).at(0).toBool(), true);
    QCOMPARE(server.ranges.last(), QString("bytes=%1-").arg(checkpoint_.size() / 2));
    QCOMPARE(downloads.at(1).at(1).toString(), sha256(checkpoint_));  // the whole file, byte for byte
    QTRY_COMPARE_WITH_TIMEOUT(imports.count(), 1, 60000);
    const QString model = imports.at(0).at(0).toString();
    QCOMPARE(model, QDir(libraryModelsFolder()).filePath("ffhq256.amod"));
    QVERIFY2(d->statusText().contains(sha256(checkpoint_)), qPrintable(d->statusText()));
    QVERIFY(!QFileInfo::exists(part));
    QCOMPARE(d->table()->item(1, 6)->text(), QString("imported"));
    // Open hands it to the editor, which keeps the photos' strip and loads the model.
    QVERIFY(d->openButton()->isEnabled());
    d->openButton()->click();
    QTRY_COMPARE(c.modelPath(), model);
    auto m = loadModel(model.toStdString());
    QCOMPARE(QString::fromStdString(m->metadata["provenance"]["sha256"].get<std::string>()), sha256(checkpoint_));
    QCOMPARE(m->metadata["alignment"].get<std::string>(), std::string("ffhq"));  // ffhq256's
  }

  void aCompleteDownloadNeedsOneRequest() {
    LoopbackServer server;
    server.body = checkpoint_;
    server.file = "31877148_state.pth";  // celebahq256's
    QVERIFY(server.listen());
    ModelLibraryDialog d(nullptr, server.base());
    QSignalSpy downloads(&d, &ModelLibraryDialog::downloadFinished);
    QSignalSpy imports(&d, &ModelLibraryDialog::importFinished);
    QVERIFY(d.select("celebahq256"));
    d.downloadSelected();
    QVERIFY(d.cancelButton()->isEnabled());
    QTRY_COMPARE_WITH_TIMEOUT(imports.count(), 1, 60000);
    QCOMPARE(downloads.count(), 1);
    QCOMPARE(server.requests, 1);
    QCOMPARE(server.ranges.first(), QString());
    QVERIFY(QFileInfo::exists(imports.at(0).at(0).toString()));
    // The model records the entry's alignment, whatever the file (here another model's) would bring.
    auto m = loadModel(imports.at(0).at(0).toString().toStdString());
    QCOMPARE(m->metadata["alignment"].get<std::string>(), std::string("celebahq"));
    const auto reason = m->metadata["provenance"]["alignment_reason"].get<std::string>();
    QVERIFY2(reason.rfind("the library entry celebahq256", 0) == 0, reason.c_str());
    QVERIFY2(d.statusText().contains("CelebA-HQ aligned"), qPrintable(d.statusText()));
    // A file the server does not have: one sentence, nothing half-made.
    QVERIFY(d.select("ffhq256"));
    d.downloadSelected();
    QTRY_COMPARE_WITH_TIMEOUT(downloads.count(), 2, 30000);
    QVERIFY2(d.statusText().contains("404"), qPrintable(d.statusText()));
    QVERIFY(!QFileInfo::exists(QDir(libraryModelsFolder()).filePath("ffhq256.amod")));
  }

  void offlineSaysSoAndOffersTheFileImport() {
    ModelLibraryDialog d(nullptr, QUrl("http://automod-model-library.invalid/"));
    QSignalSpy downloads(&d, &ModelLibraryDialog::downloadFinished);
    QVERIFY(d.select("celebahq256"));
    d.downloadSelected();
    // A resolver without a reachable nameserver may take its full timeout to say so.
    QTRY_COMPARE_WITH_TIMEOUT(downloads.count(), 1, 50000);
    QVERIFY2(d.statusText().contains("offline") && d.statusText().contains("Import a File You Downloaded"),
             qPrintable(d.statusText()));
    QVERIFY(!d.statusText().contains('\n'));
  }

  void importCheckpointFromTheMenuRunsInTheBackground() {
    StudioController c;
    c.setModel(test::expressiveTinyModel(), "tiny");
    MainWindow w(&c);
    // A damaged checkpoint: a sentence in the status bar, the current model stays, nothing written.
    QTemporaryDir dir;
    const QString bad = dir.filePath("cut_state.pth");
    QFile f(bad);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write(checkpoint_.left(checkpoint_.size() / 3));
    f.close();
    w.importCheckpoint(bad);
    QVERIFY(w.importRunning());
    QTRY_VERIFY_WITH_TIMEOUT(!w.importRunning(), 30000);
    QVERIFY2(w.lastMessage().startsWith("Cannot import cut_state.pth: "), qPrintable(w.lastMessage()));
    QCOMPARE(c.modelName(), QString("tiny"));
    QVERIFY(QDir(libraryModelsFolder()).entryList({"*.amod", "*.importing"}, QDir::Files).isEmpty());
    w.importCheckpoint(checkpoint_path_);
    QTRY_VERIFY_WITH_TIMEOUT(!w.importRunning(), 60000);
    QVERIFY2(w.lastMessage().startsWith("Imported ffhq-style.pth"), qPrintable(w.lastMessage()));
    const QString first = QDir(libraryModelsFolder()).filePath("ffhq-style.amod");
    QCOMPARE(c.modelPath(), first);
    // Another checkpoint of the same file name (another run's, from another folder): imported beside
    // the first, which stays as it was, and both are in the library.
    QFile kept(first);
    QVERIFY(kept.open(QIODevice::ReadOnly));
    const QByteArray first_bytes = kept.readAll();
    kept.close();
    QTemporaryDir other;
    const QString again = other.filePath("ffhq-style.pth");
    QVERIFY(QFile::copy(checkpoint_path_, again));
    w.importCheckpoint(again);
    QTRY_VERIFY_WITH_TIMEOUT(!w.importRunning(), 60000);
    QVERIFY2(w.lastMessage().startsWith("Imported ffhq-style.pth"), qPrintable(w.lastMessage()));
    const QString second = QDir(libraryModelsFolder()).filePath("ffhq-style (2).amod");
    QCOMPARE(c.modelPath(), second);
    QVERIFY(kept.open(QIODevice::ReadOnly));
    QVERIFY(kept.readAll() == first_bytes);
    ModelLibraryDialog library;
    QVERIFY(library.select("ffhq-style.amod"));
    QVERIFY(library.select("ffhq-style (2).amod"));
  }

  void importingAnUnrecognisedCheckpointAsksHowItsPhotosWereAligned() {
    // train-step-m0-before.pth is a checkpoint of the authors' code that is not a released model.
    const QString file = QString::fromStdString((test::referenceDir() / "train-step-m0-before.pth").string());
    if (!QFileInfo::exists(file)) QSKIP("no train-step-m0-before.pth in the fixture folder");
    QVERIFY(needsAlignmentChoice(std::filesystem::path(file.toStdString())));
    StudioController c;
    c.setModel(test::expressiveTinyModel(), "tiny");
    MainWindow w(&c);
    // Answers the question when it comes: cancel the first time, "none" the second.
    QStringList asked;
    auto answer = [&](const QString& choice) {
      auto* timer = new QTimer(&w);
      QObject::connect(timer, &QTimer::timeout, [&asked, timer, choice] {
        auto* d = qobject_cast<AlignmentDialog*>(QApplication::activeModalWidget());
        if (!d) return;
        timer->stop();
        timer->deleteLater();
        asked << d->windowTitle();
        if (choice.isEmpty()) {
          d->reject();
          return;
        }
        d->choose(choice);
        d->accept();
      });
      timer->start(20);
    };
    answer({});
    w.importCheckpoint(file);
    QCOMPARE(asked.size(), 1);
    QVERIFY(!w.importRunning());
    QVERIFY2(w.lastMessage().contains("cancelled"), qPrintable(w.lastMessage()));
    QVERIFY(QDir(libraryModelsFolder()).entryList({"*.amod"}, QDir::Files).isEmpty());
    answer("none");
    w.importCheckpoint(file);
    QCOMPARE(asked.size(), 2);
    QTRY_VERIFY_WITH_TIMEOUT(!w.importRunning(), 60000);
    QVERIFY2(w.lastMessage().startsWith("Imported train-step-m0-before.pth"), qPrintable(w.lastMessage()));
    auto m = loadModel(QDir(libraryModelsFolder()).filePath("train-step-m0-before.amod").toStdString());
    QCOMPARE(m->metadata["alignment"].get<std::string>(), std::string("none"));
    // The library shows the imported model's details, not dashes.
    ModelLibraryDialog library;
    QVERIFY(library.select("train-step-m0-before.amod"));
    const int row = library.table()->currentRow();
    QCOMPARE(library.table()->item(row, 1)->text(), QString("%1 px").arg(m->resolution()));
    QCOMPARE(library.table()->item(row, 2)->text(),
             QString::fromStdString(m->metadata["provenance"]["architecture"].get<std::string>()));
    QCOMPARE(library.table()->item(row, 3)->text(), QString("centre crop"));
  }

  void theAlignmentQuestionHasNoDefault() {
    AlignmentDialog d(nullptr, "x_state.pth");
    QVERIFY(d.alignment().isEmpty());
    auto* ok = d.findChild<QDialogButtonBox*>()->button(QDialogButtonBox::Ok);
    QVERIFY(!ok->isEnabled());
    d.choose("celebahq");
    QCOMPARE(d.alignment(), QString("celebahq"));
    QVERIFY(ok->isEnabled());
  }
};

QTEST_MAIN(TestModelLibrary)
#include "tst_model_library.moc"
