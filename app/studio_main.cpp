// `automod-studio`: the desktop editor. Its logic lives in automod_ui; this file only parses the
// few command-line switches (--version, --headless) and opens the window.
#include <QApplication>
#include <QCommandLineParser>
#include <QIcon>

#include <cstdio>

#include "core/util/device.h"
#include "ui/headless.h"
#include "ui/main_window.h"

int main(int argc, char** argv) {
  // Debian's LibTorch starts with one intra-op thread: use every hardware thread.
  automod::configureThreads(0);
  // --version and --headless must work without a display: decide before creating QApplication.
  bool headless = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--version" || a == "-v") {
      std::printf("automod-studio %s\n", AUTOMOD_VERSION);
      return 0;
    }
    if (a == "--headless") headless = true;
  }
  if (headless) {
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName("automod-studio");
    QCoreApplication::setApplicationVersion(AUTOMOD_VERSION);
    QCommandLineParser parser;
    parser.setApplicationDescription("Automodulator Studio, headless: reconstructions and a coarse/fine mix");
    parser.addHelpOption();
    parser.addOption({"headless", "Run without a window."});
    parser.addOption({"out", "Output folder.", "DIR", "automod-studio-out"});
    parser.addOption({"model", "Model file (.amod); default: the bundled model.", "MODEL"});
    parser.addPositionalArgument("photos", "Photos to use (default: resources/samples/).", "[PHOTO...]");
    parser.process(app);
    return automod::ui::runHeadless(parser.value("model"), parser.value("out"), parser.positionalArguments());
  }

  QApplication app(argc, argv);
  QApplication::setApplicationName("automod-studio");
  QApplication::setApplicationDisplayName("Automodulator Studio");
  QApplication::setOrganizationName("Automodulator Studio");
  QApplication::setApplicationVersion(AUTOMOD_VERSION);
  QApplication::setWindowIcon(QIcon(":/icons/automod-studio.svg"));
  QCommandLineParser parser;
  parser.setApplicationDescription("Automodulator Studio: mix, sample and edit faces with a deep automodulator");
  parser.addHelpOption();
  parser.addVersionOption();
  parser.addOption({"model", "Model file (.amod) to open.", "MODEL"});
  parser.addOption({"screenshots", "Save a screenshot of each tab into DIR, then quit.", "DIR"});
  parser.addPositionalArgument("photos", "Photos or a project (.json) to open.", "[FILE...]");
  parser.process(app);

  automod::ui::MainWindow window;
  window.openStartupFiles(parser.value("model"), parser.positionalArguments());
  window.show();
  if (parser.isSet("screenshots")) {
    QObject::connect(&window, &automod::ui::MainWindow::screenshotsTaken, &app,
                     [&app](bool ok) { app.exit(ok ? 0 : 1); });
    window.takeScreenshots(parser.value("screenshots"));
  }
  return app.exec();
}
